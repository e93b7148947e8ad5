package eventstore

import (
	"encoding/json"
	"fmt"
)

// KeepSnapshots is how many snapshots a store keeps per stream, the latest ones.
const KeepSnapshots = 3

// ValidateSnapshot checks a snapshot before it is saved. For backends.
func ValidateSnapshot(s Snapshot) error {
	if err := ValidateStream(s.Stream); err != nil {
		return err
	}
	if s.Version < 1 {
		return fmt.Errorf("a snapshot of stream %q is at version %d; snapshots are of versions from 1", clip(s.Stream, 60), s.Version)
	}
	if err := ValidateType(s.Type); err != nil {
		return fmt.Errorf("a snapshot of stream %q %v", clip(s.Stream, 60), err)
	}
	if len(s.Data) > MaxDataLen || !json.Valid(s.Data) {
		return fmt.Errorf("a snapshot of stream %q has data that is not JSON of at most %d bytes", clip(s.Stream, 60), MaxDataLen)
	}
	return nil
}

// GroupMismatch is the error of a member asking for another partition count than its
// group has. For backends.
func GroupMismatch(group string, have, want int) error {
	return fmt.Errorf("%w: group %q has %d partitions and a member asked for %d; start every member with the same count (or use a new group name)",
		ErrGroupMismatch, group, have, want)
}

func validateName(what, name string) error {
	if name == "" || len(name) > MaxStreamLen {
		return fmt.Errorf("a %s name must be 1 to %d bytes, not %q", what, MaxStreamLen, clip(name, 60))
	}
	return nil
}

// ValidateName checks a checkpoint, group or projection name. For backends.
func ValidateName(what, name string) error { return validateName(what, name) }
