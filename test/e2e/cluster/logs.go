package cluster

import (
	"fmt"
	"os"
	"strings"
)

// logNames are the components whose logs a failure prints, most useful
// first.
var logNames = []string{"kubelet", "berthd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}

// LogMark is a position in every component's log.
type LogMark map[string]int64

// Mark returns the current end of every log, for LogsSince.
func (c *Cluster) Mark() LogMark {
	m := LogMark{}
	for _, n := range logNames {
		if fi, err := os.Stat(c.LogPath(n)); err == nil {
			m[n] = fi.Size()
		}
	}
	return m
}

// LogsSince returns what each component logged after mark, at most max
// lines per component (the last ones), so a failing test shows the logs of
// its own time span.
func (c *Cluster) LogsSince(mark LogMark, max int) string {
	var b strings.Builder
	for _, n := range logNames {
		data, err := os.ReadFile(c.LogPath(n))
		if err != nil || int64(len(data)) <= mark[n] {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data[mark[n]:]), "\n"), "\n")
		cut := ""
		if len(lines) > max {
			cut = fmt.Sprintf(", the last %d of %d lines", max, len(lines))
			lines = lines[len(lines)-max:]
		}
		fmt.Fprintf(&b, "----- %s log during the test (%s%s)\n%s\n", n, c.LogPath(n), cut, strings.Join(lines, "\n"))
	}
	return b.String()
}
