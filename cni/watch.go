package cni

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// watcher calls reload after every change to a directory. If the directory
// goes away the watch ends and lost reports true; the Manager then reloads
// on every Ready instead, so a recreated directory is still noticed.
type watcher struct {
	w    *fsnotify.Watcher
	dead atomic.Bool
	done chan struct{}
	once sync.Once
}

func watch(dir string, reload func(), log *zap.Logger) (*watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch cni conf dir: %w", err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch cni conf dir %s: %w", dir, err)
	}
	cw := &watcher{w: w, done: make(chan struct{})}
	clean := filepath.Clean(dir)
	go func() {
		defer close(cw.done)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) == clean && ev.Has(fsnotify.Remove|fsnotify.Rename) {
					log.Warn("cni conf dir went away; reloading on every status check", zap.String("conf_dir", dir))
					cw.dead.Store(true)
				}
				reload()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflow loses events: read everything again.
				log.Warn("watching cni conf dir", zap.String("conf_dir", dir), zap.Error(err))
				reload()
			}
		}
	}()
	return cw, nil
}

// lost reports whether changes may go unnoticed.
func (cw *watcher) lost() bool { return cw == nil || cw.dead.Load() }

func (cw *watcher) close() error {
	var err error
	cw.once.Do(func() {
		err = cw.w.Close()
		<-cw.done
	})
	return err
}
