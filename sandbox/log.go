package sandbox

// The CRI log file, in kubelet's format: one record per line,
//
//	<RFC 3339 timestamp, nanoseconds> <stdout|stderr> <P|F> <content>
//
// A line longer than maxLogLine is split into records of maxLogLine bytes
// tagged P (partial); the record that ends the line is tagged F (full).
// Output left without a newline when a stream ends is written as F.
// kubelet rotates the file by renaming it and calling ReopenContainerLog.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	maxLogLine   = 16 << 10
	logTimestamp = "2006-01-02T15:04:05.000000000Z07:00"
)

// criLog is a container's log file, shared by its stream copiers.
type criLog struct {
	dir, rel string // the pod's log directory, the log path beneath it
	path     string // the two joined, for messages
	now      func() time.Time

	// mu guards f and buf, and keeps records whole.
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

// openCRILog opens (appends to) the log at rel beneath dir, creating it
// (openBeneath).
func openCRILog(dir, rel string) (*criLog, error) {
	l := &criLog{dir: dir, rel: rel, path: filepath.Join(dir, rel), now: time.Now}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// reopen starts a new file at path, as after kubelet renamed the old one.
// A log directory that vanished is made again.
func (l *criLog) reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := openBeneath(l.dir, l.rel)
	if err != nil {
		return fmt.Errorf("reopen log %s: %w", l.path, err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	return nil
}

// write appends one record.
func (l *criLog) write(stream string, partial bool, content []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	tag := " F "
	if partial {
		tag = " P "
	}
	b := l.now().UTC().AppendFormat(l.buf[:0], logTimestamp)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, tag...)
	b = append(b, content...)
	b = append(b, '\n')
	l.buf = b[:0]
	if cap(l.buf) > 2*maxLogLine {
		l.buf = nil // a burst of long lines should not pin memory
	}
	_, err := l.f.Write(b)
	return err
}

func (l *criLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// copyLog reads r until EOF and writes its lines to l as stream. Write
// errors (a full disk) drop output but keep reading, so the container
// never blocks on a stuck pipe.
func copyLog(l *criLog, stream string, r io.Reader) {
	buf := make([]byte, maxLogLine+1)
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		start := 0
		for {
			i := bytes.IndexByte(buf[start:n], '\n')
			if i < 0 {
				break
			}
			_ = l.write(stream, false, buf[start:start+i])
			start += i + 1
		}
		// A line is split only once it is known to be longer than
		// maxLogLine, so a line of exactly maxLogLine stays whole.
		for n-start > maxLogLine {
			_ = l.write(stream, true, buf[start:start+maxLogLine])
			start += maxLogLine
		}
		n = copy(buf, buf[start:n])
		if err != nil {
			if n > 0 {
				_ = l.write(stream, false, buf[:n])
			}
			return
		}
	}
}
