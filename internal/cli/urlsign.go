package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/urlsign"
)

func newURLSignCmd() *cobra.Command {
	var keyFile, scope, client, base string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "urlsign --key-file F --base URL [--scope PREFIX] [--client PREFIX] [--expires D] PATH",
		Short: "Print a signed content URL, or make a signing key (urlsign keygen)",
		Long: `Print the signed URL of PATH (title/file) on an appliance:
BASE/c/TOKEN/title/file. The token is signed with the active key of --key-file,
the same file the control plane and the appliances use.

By default the token covers PATH alone. With --scope t0042/ it covers every file
of title t0042, so a player can follow relative URLs inside an HLS or DASH
playlist; the scope must cover PATH. With --client the token is only good for
clients inside that prefix.

Make a key file with: ocdn urlsign keygen --out keys.json`,
		Example: `  ocdn urlsign --key-file keys.json --base http://127.1.0.1:18080 t0042/video_3000k.mp4
  ocdn urlsign --key-file keys.json --scope clip/ --expires 6h --base http://127.1.0.1:18080 clip/index.m3u8`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if err := content.ValidatePath(path); err != nil {
				return err
			}
			u, err := url.Parse(base)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				return fmt.Errorf("--base %q: want an http(s) URL such as http://127.1.0.1:18080", base)
			}
			if expires <= 0 {
				return fmt.Errorf("--expires %s: must be positive", expires)
			}
			if scope == "" {
				scope = path
			}
			if err := urlsign.ValidateScope(scope); err != nil {
				return fmt.Errorf("--scope: %w", err)
			}
			if !urlsign.Covers(scope, path) {
				return fmt.Errorf("--scope %q does not cover %s", scope, path)
			}
			g := urlsign.Grant{Scope: scope, Expires: time.Now().Add(expires)}
			if client != "" {
				if g.Client, err = netip.ParsePrefix(client); err != nil {
					addr, aerr := netip.ParseAddr(client)
					if aerr != nil {
						return fmt.Errorf("--client %q: want a prefix such as 127.64.0.0/16", client)
					}
					g.Client = netip.PrefixFrom(addr, addr.BitLen())
				}
			}
			ks, err := urlsign.LoadKeySet(keyFile)
			if err != nil {
				return err
			}
			tok, err := ks.Sign(g)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/c/%s/%s\n", strings.TrimRight(base, "/"), tok, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "URL-signing key file, as made by ocdn urlsign keygen (required)")
	cmd.Flags().StringVar(&base, "base", "", "appliance base URL, e.g. http://127.1.0.1:18080 (required)")
	cmd.Flags().StringVar(&scope, "scope", "", "what the token covers: a title prefix such as t0042/ or one title/file (default: PATH alone)")
	cmd.Flags().StringVar(&client, "client", "", "only clients inside this prefix (or address) may use the URL, e.g. 127.64.0.0/16")
	cmd.Flags().DurationVar(&expires, "expires", time.Hour, "how long the URL stays valid")
	cmd.MarkFlagRequired("key-file")
	cmd.MarkFlagRequired("base")
	cmd.AddCommand(newKeygenCmd())
	return cmd
}

func newKeygenCmd() *cobra.Command {
	var out, publicOut, id, alg string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --out F [--public-out F] [--alg ed25519|hmac-sha256]",
		Short: "Write a new URL-signing key file (readable only by its owner)",
		Long: `Write a key file holding one fresh key, marked active.

With --alg ed25519 (the default) the key is an Ed25519 pair: the control plane
(key_file) holds the private key and signs; appliances need only the public key,
which --public-out writes to a second file (their key_file), so an appliance
that is broken into cannot mint tokens for the CDN. With --alg hmac-sha256 the
key is a random 256-bit secret that the control plane and every appliance share.

Files are created with mode 0600 and an existing file is never replaced unless
--force is given, since replacing it invalidates every URL signed with the old
key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				id = "k" + strconv.FormatInt(time.Now().Unix(), 36)
			}
			var k urlsign.Key
			switch alg {
			case urlsign.AlgEd25519:
				k = urlsign.NewEd25519Key(id)
			case urlsign.AlgHMAC:
				k = urlsign.NewKey(id)
				if publicOut != "" {
					return errors.New("--public-out: an hmac-sha256 key has no public half; give every appliance the --out file")
				}
			default:
				return fmt.Errorf("--alg %q: want ed25519 or hmac-sha256", alg)
			}
			ks := &urlsign.KeySet{Active: id, Keys: []urlsign.Key{k}}
			if err := ks.Validate(); err != nil {
				return fmt.Errorf("--id: %w", err)
			}
			if err := writeKeyFile(ks, out, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: key %s (%s)\n", out, ks.Active, alg)
			if publicOut != "" {
				if err := writeKeyFile(ks.Public(), publicOut, force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: the public key, for appliances\n", publicOut)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "key file to write: the control plane's (required)")
	cmd.Flags().StringVar(&publicOut, "public-out", "", "also write the appliances' key file: the public key only (ed25519)")
	cmd.Flags().StringVar(&alg, "alg", urlsign.AlgEd25519, "key algorithm: ed25519 (appliances verify with a public key) or hmac-sha256 (a shared secret)")
	cmd.Flags().StringVar(&id, "id", "", "key id written into every token (default: k + the time in base 36)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key file")
	cmd.MarkFlagRequired("out")
	return cmd
}

// writeKeyFile writes ks to a new 0600 file next to out and then links it
// into place (refusing to replace out) or, with force, renames it over out.
// Either way out is never seen half-written or with wider permissions.
func writeKeyFile(ks *urlsign.KeySet, out string, force bool) error {
	data, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return err
	}
	// CreateTemp makes the file with mode 0600 before any secret is in it.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".keygen-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if force {
		return os.Rename(tmp.Name(), out)
	}
	if err := os.Link(tmp.Name(), out); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s %w; use --force to replace it (URLs signed with its keys stop working)", out, errExists)
		}
		return err
	}
	return nil
}
