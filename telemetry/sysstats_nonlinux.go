//go:build !linux

package telemetry

func residentBytes() (int64, bool)    { return 0, false }
func memoryLimitBytes() (int64, bool) { return 0, false }
