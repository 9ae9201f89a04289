package appliance

import (
	"context"

	"github.com/ocdn/ocdn/internal/urlsign"
)

// The appliance's URL-signing keys start as Config.Keys and are replaced
// by the set GET /v1/keys returns whenever a heartbeat reply names another
// version, so keys rotate without a restart. While the control plane is
// unreachable the last set stays in use (static stability).

// currentKeys verifies content tokens.
func (a *Appliance) currentKeys() *urlsign.KeySet {
	if ks := a.keys.Load(); ks != nil {
		return ks
	}
	return a.cfg.Keys
}

// refreshKeys fetches the control plane's key set.
func (a *Appliance) refreshKeys(ctx context.Context) error {
	var ks urlsign.KeySet
	if err := a.cfg.Control.GetJSON(ctx, "/v1/keys", &ks); err != nil {
		return err
	}
	if err := ks.Validate(); err != nil {
		return err
	}
	a.keys.Store(&ks)
	a.log.Info("url-signing keys updated", "active", ks.Active, "keys", len(ks.Keys))
	return nil
}
