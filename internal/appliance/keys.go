package appliance

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ocdn/ocdn/internal/urlsign"
)

// The appliance's URL-signing keys start as Config.Keys and are replaced
// by the set GET /v1/keys returns whenever a heartbeat reply names another
// version, so keys rotate without a restart. While the control plane is
// unreachable the last set stays in use (static stability).

var applianceKeys sync.Map // *Appliance → *atomic.Pointer[urlsign.KeySet]

func (a *Appliance) keyPtr() *atomic.Pointer[urlsign.KeySet] {
	v, _ := applianceKeys.LoadOrStore(a, new(atomic.Pointer[urlsign.KeySet]))
	return v.(*atomic.Pointer[urlsign.KeySet])
}

// currentKeys verifies content tokens.
func (a *Appliance) currentKeys() *urlsign.KeySet {
	if ks := a.keyPtr().Load(); ks != nil {
		return ks
	}
	return a.cfg.Keys
}

// refreshKeys fetches the control plane's key set.
func (a *Appliance) refreshKeys(ctx context.Context) error {
	var ks urlsign.KeySet
	if err := a.get(ctx, a.cfg.ControlURL+"/v1/keys", &ks); err != nil {
		return err
	}
	if err := ks.Validate(); err != nil {
		return err
	}
	a.keyPtr().Store(&ks)
	a.log.Info("url-signing keys updated", "active", ks.Active, "keys", len(ks.Keys))
	return nil
}

// authorize adds the appliance's credential to a control-plane request.
func (a *Appliance) authorize(req *http.Request) {
	// Only to the control plane: never to the origin or a fill peer.
	if a.cfg.Token != "" && a.cfg.ControlURL != "" && strings.HasPrefix(req.URL.String(), a.cfg.ControlURL+"/") {
		req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	}
}
