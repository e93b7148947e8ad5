package eventstore

// ResolveRetry decides an append some of whose event IDs are already stored: stored holds
// the stored events with any of ids (in any order), current the stream's version. When
// every ID is stored, in stream at consecutive versions in the same order, and expected
// would have allowed the earlier append, the append is a retry and its result is the
// earlier one with Duplicate set; when expected would not have allowed it, the result is a
// *ConflictError; otherwise a *DuplicateEventError names the first stored ID. Every
// backend uses it, so retries are decided alike. For backends.
func ResolveRetry(stream string, expected ExpectedVersion, ids []string, stored []RecordedEvent, current int64) (AppendResult, error) {
	byID := make(map[string]RecordedEvent, len(stored))
	for _, e := range stored {
		byID[e.ID] = e
	}
	retry := len(byID) == len(ids)
	var first RecordedEvent
	for i, id := range ids {
		e, ok := byID[id]
		if !ok {
			retry = false
			continue
		}
		if i == 0 {
			first = e
		}
		if e.Stream != stream || i > 0 && (first.Stream == "" || e.Version != first.Version+int64(i)) {
			retry = false
		}
	}
	if retry {
		last := byID[ids[len(ids)-1]]
		if !expected.Allows(first.Version - 1) {
			return AppendResult{}, &ConflictError{Stream: stream, Expected: expected, Actual: current}
		}
		return AppendResult{Stream: stream, FirstVersion: first.Version, LastVersion: last.Version,
			FirstPosition: first.Position, LastPosition: last.Position, Duplicate: true}, nil
	}
	for _, id := range ids {
		if e, ok := byID[id]; ok {
			return AppendResult{}, &DuplicateEventError{ID: id, Stream: e.Stream, Version: e.Version, Position: e.Position}
		}
	}
	// Nothing stored after all (the caller saw a duplicate that is not there): a conflict of
	// another kind would have been reported; treat it as a version check.
	return AppendResult{}, &ConflictError{Stream: stream, Expected: expected, Actual: current}
}
