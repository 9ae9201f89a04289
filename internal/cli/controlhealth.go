package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/cpstore"
)

// controlHealth is what the control plane's health, persistence and trust
// need from its config file.
type controlHealth struct {
	Store           *cpstore.Store
	ApplianceSecret auth.Secret
}

// controlHealthConfig opens the state store (flag, then config, then
// control.db beside the config file) and reads the appliance secret (a
// base64 line, at least 32 bytes).
func controlHealthConfig(ctx context.Context, cfg *config.Control, configFile, storeFlag string) (controlHealth, error) {
	var hc controlHealth
	if cfg.ApplianceSecretFile != "" {
		b, err := os.ReadFile(cfg.ApplianceSecretFile)
		if err != nil {
			return hc, fmt.Errorf("appliance_secret_file: %w", err)
		}
		sec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(sec) < 32 {
			return hc, fmt.Errorf("appliance_secret_file %s: want at least 32 bytes in base64 (make one with: head -c 32 /dev/urandom | base64)", cfg.ApplianceSecretFile)
		}
		hc.ApplianceSecret = sec
	}
	dsn := storeFlag
	if dsn == "" {
		dsn = cfg.Store
	}
	if dsn == "" {
		dsn = filepath.Join(filepath.Dir(configFile), "control.db")
	}
	st, err := cpstore.Open(ctx, dsn)
	if err != nil {
		return hc, err
	}
	hc.Store = st
	return hc, nil
}
