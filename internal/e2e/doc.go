// Package e2e holds end-to-end tests that compose ocdn's real components with real outside peers.
package e2e
