package eventstore

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"
)

// PartitionOf is the partition of a group with n partitions that stream's events belong to:
// FNV-1a of the stream name, modulo n. Every event of a stream is in the same partition, so
// a group member handles a stream's events in order.
func PartitionOf(stream string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(stream))
	return int(h.Sum32() % uint32(n))
}

// MemberInfo is a group member's registration.
type MemberInfo struct {
	Member  string
	Expires time.Time
}

// ValidateLeaseRequest checks a heartbeat's fields. For backends.
func ValidateLeaseRequest(req LeaseRequest) error {
	switch {
	case req.Group == "":
		return fmt.Errorf("a group subscription needs a group name")
	case len(req.Group) > MaxStreamLen:
		return fmt.Errorf("group name %q is longer than %d bytes", clip(req.Group, 60), MaxStreamLen)
	case req.Member == "":
		return fmt.Errorf("group %q: a member needs a name", req.Group)
	case len(req.Member) > MaxStreamLen:
		return fmt.Errorf("group %q: member name %q is longer than %d bytes", req.Group, clip(req.Member, 60), MaxStreamLen)
	case req.Partitions < 1 || req.Partitions > 1024:
		return fmt.Errorf("group %q: %d partitions; use 1 to 1024", req.Group, req.Partitions)
	case req.TTL <= 0:
		return fmt.Errorf("group %q: the lease TTL must be positive", req.Group)
	}
	return nil
}

// PlanRebalance is the rebalancing every backend applies (see [Groups.Rebalance]), so that
// they all behave the same: given the group's partitions and its members (the requesting
// member already registered until req.Now+req.TTL), it returns the partitions afterwards,
// the indexes of those that changed, and the requesting member's leases. For backends,
// which read the group under a lock, plan, and write the changed partitions back.
func PlanRebalance(req LeaseRequest, parts []PartitionInfo, members []MemberInfo) (out []PartitionInfo, changed []int, leases []Lease) {
	out = slices.Clone(parts)
	live := 0
	for _, m := range members {
		if m.Expires.After(req.Now) {
			live++
		}
	}
	live = max(live, 1)
	fair := (len(out) + live - 1) / live
	until := req.Now.Add(req.TTL)
	var own []int
	for i := range out {
		if out[i].Owner == req.Member {
			own = append(own, i)
		}
	}
	// Beyond the fair share: give up the highest partitions.
	for len(own) > fair {
		i := own[len(own)-1]
		own = own[:len(own)-1]
		out[i].Owner, out[i].Expires = "", time.Time{}
		changed = append(changed, i)
	}
	// Renew what stays.
	for _, i := range own {
		out[i].Expires = until
		changed = append(changed, i)
	}
	// Below it: claim free or expired partitions, lowest first.
	for i := range out {
		if len(own) >= fair {
			break
		}
		if out[i].Owner == req.Member {
			continue
		}
		if out[i].Owner == "" || !out[i].Expires.After(req.Now) {
			out[i].Owner, out[i].Expires = req.Member, until
			own = append(own, i)
			changed = append(changed, i)
		}
	}
	slices.Sort(own)
	for _, i := range own {
		leases = append(leases, Lease{Partition: out[i].Partition, Checkpoint: out[i].Checkpoint})
	}
	slices.Sort(changed)
	changed = slices.Compact(changed)
	return out, changed, leases
}
