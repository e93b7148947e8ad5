package fleet

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// An instance runs in a process group of its own, led by the process shoal started. That
// process is not always the service: `go run .` is a wrapper whose child serves, and a shell
// script may start the server and wait. So the fleet measures CPU and memory over the whole
// group, and reports as the instance's PID the process of the group that listens on its port.

// groupProc is one process of an instance's group at one sample.
type groupProc struct {
	pid int
	cpu float64 // CPU seconds, user and system
	rss int     // resident bytes
}

// processGroups reads every process of the machine once and returns those of the groups
// asked for, by group ID. Processes that vanish while being read are skipped.
func processGroups(fs procfs.FS, pgids map[int]bool) (map[int][]groupProc, error) {
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, err
	}
	out := make(map[int][]groupProc, len(pgids))
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil || !pgids[st.PGRP] {
			continue
		}
		out[st.PGRP] = append(out[st.PGRP], groupProc{pid: st.PID, cpu: st.CPUTime(), rss: st.ResidentMemory()})
	}
	return out, nil
}

// groupCPU is the CPU the processes of one group used since the last sample, kept per PID so
// that a child exiting (its CPU leaving the sum) does not count as negative use.
type groupCPU struct {
	last map[int]float64 // pid → CPU seconds at the last sample
}

// delta returns the CPU seconds used by procs since the previous call, and false on the first
// call for the group. A process that was not there before started since, so all of its CPU
// time counts.
func (g *groupCPU) delta(procs []groupProc) (float64, bool) {
	first := g.last == nil
	next := make(map[int]float64, len(procs))
	var used float64
	for _, p := range procs {
		next[p.pid] = p.cpu
		if prev, ok := g.last[p.pid]; ok {
			used += max(p.cpu-prev, 0)
		} else {
			used += p.cpu
		}
	}
	g.last = next
	return used, !first
}

// listenerPID returns the process of the group pgid that has a socket listening on port, or 0.
//
// The listening sockets come from /proc/net/tcp and tcp6, read here because procfs's parsers
// of those files are deprecated; a socket is matched to its process by the inode its file
// descriptor links to (socket:[inode]).
func listenerPID(fs procfs.FS, procRoot string, pgid, port int) int {
	inodes := listeningInodes(procRoot, port)
	if len(inodes) == 0 {
		return 0
	}
	groups, err := processGroups(fs, map[int]bool{pgid: true})
	if err != nil {
		return 0
	}
	for _, p := range groups[pgid] {
		fds, err := os.ReadDir(filepath.Join(procRoot, strconv.Itoa(p.pid), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(p.pid), "fd", fd.Name()))
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(target, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
				return p.pid
			}
		}
	}
	return 0
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listeningInodes returns the inodes of the TCP sockets listening on port.
func listeningInodes(procRoot string, port int) map[string]bool {
	want := fmt.Sprintf("%04X", port)
	out := map[string]bool{}
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(procRoot, "net", name))
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		s.Scan() // the header
		for s.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
			fields := strings.Fields(s.Text())
			if len(fields) < 10 || fields[3] != tcpListen {
				continue
			}
			if _, p, ok := strings.Cut(fields[1], ":"); ok && p == want {
				out[fields[9]] = true
			}
		}
		f.Close()
	}
	return out
}
