package control

import "github.com/ocdn/ocdn/internal/api"

// onHealthChange publishes a new snapshot after id's health changed.
func (s *Server) onHealthChange(id string) { s.rebuild() }

// recordReports keeps queued heartbeat records (persisted when a store is
// configured).
func (s *Server) recordReports(id string, hbs []api.Heartbeat) {}

// turnUpBlocked says why id may not receive clients yet.
func (s *Server) turnUpBlocked(id string) (string, bool) { return "", false }
