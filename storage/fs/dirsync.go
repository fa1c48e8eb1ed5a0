package fs

import "sync"

// dirSyncer shares directory syncs between concurrent writers: a caller
// needs one sync that starts after its own change to the directory, and all
// callers waiting when a sync starts are served by it.
type dirSyncer struct {
	mu   sync.Mutex
	dirs map[string]*dirSync
}

type dirSync struct {
	cond          *sync.Cond
	users         int    // callers holding this entry
	started, done uint64 // syncs started and finished, numbered from 1
	running       bool
	err           error // of sync number done
}

// sync returns once a sync of dir that started after the call has finished.
func (s *dirSyncer) sync(dir string) error {
	s.mu.Lock()
	if s.dirs == nil {
		s.dirs = map[string]*dirSync{}
	}
	d := s.dirs[dir]
	if d == nil {
		d = &dirSync{cond: sync.NewCond(&s.mu)}
		s.dirs[dir] = d
	}
	d.users++
	need := d.started + 1
	for d.done < need {
		if d.running {
			d.cond.Wait()
			continue
		}
		d.running = true
		d.started++
		n := d.started
		s.mu.Unlock()
		err := syncDir(dir)
		s.mu.Lock()
		d.running, d.done, d.err = false, n, err
		d.cond.Broadcast()
	}
	err := d.err
	if d.users--; d.users == 0 {
		delete(s.dirs, dir)
	}
	s.mu.Unlock()
	return err
}
