package api

import (
	"context"
	"time"

	"github.com/kvflow/kvflow/storage"
)

// sweepLoop runs Sweep every SweepInterval until ctx ends.
func (s *Server) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep(ctx)
		}
	}
}

// Sweep purges expired entries in batches of SweepBatch, counting them per
// namespace in kvflow_kv_keys_expired_purged_total, prunes KV versions and
// changes outside Config.History's retention, then deletes value
// objects no entry needs any more (older than storage.DefaultGCGrace). It
// returns how many entries it purged per namespace.
func (s *Server) Sweep(ctx context.Context) (map[string]int, error) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	start := time.Now()
	purged, err := s.cfg.Store.Purge(ctx, storage.PurgeOptions{BatchSize: s.cfg.SweepBatch})
	s.metrics.observe("kv_purge", start)
	total := 0
	for ns, n := range purged {
		s.metrics.purged.WithLabelValues(ns).Add(float64(n))
		total += n
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sweeper: purging expired entries failed", "purged", total, "err", err)
		}
		return purged, err
	}
	start = time.Now()
	versions, changes, err := s.cfg.Store.PruneHistory(ctx, s.cfg.History, s.cfg.SweepBatch)
	s.metrics.observe("kv_prune_history", start)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sweeper: pruning history failed", "versions", versions, "changes", changes, "err", err)
		}
		return purged, err
	}
	start = time.Now()
	removed, err := s.cfg.Store.CollectGarbage(ctx, storage.DefaultGCGrace)
	s.metrics.observe("kv_collect_garbage", start)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("sweeper: collecting garbage failed", "removed", removed, "err", err)
	}
	if total > 0 || removed > 0 {
		s.log.Info("sweeper: done", "purged", total, "versions_pruned", versions, "changes_pruned", changes, "objects_removed", removed, "duration", time.Since(start))
	}
	return purged, err
}
