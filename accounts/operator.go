package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Operator mode keeps, besides DIR/<user>.nk and DIR/<user>.creds:
//
//	DIR/operator.nk             the operator's seed (signs account JWTs)
//	DIR/accounts/<account>.nk   each account's seed (signs its user JWTs)
//	DIR/jwt/<account key>.jwt   the account JWTs: the server's resolver directory
//
// The resolver is nats-server's "full" resolver over DIR/jwt rather than
// the MEMORY resolver with resolver_preload: an account JWT pushed to a
// running server on $SYS.REQ.CLAIMS.UPDATE (what Revoke does) takes effect
// at once and is kept in the directory across restarts, whereas a preload
// only changes with a config reload and is replaced by the config's copy
// on every restart.

func operatorSeedFile(dir string) string     { return filepath.Join(dir, "operator.nk") }
func accountSeedFile(dir, acc string) string { return filepath.Join(dir, "accounts", acc+".nk") }
func resolverDir(dir string) string          { return filepath.Join(dir, "jwt") }
func accountJWTFile(dir, pub string) string  { return filepath.Join(resolverDir(dir), pub+".jwt") }
func accountJWTLink(dir, acc string) string  { return filepath.Join(dir, "accounts", acc+".jwt") }

func generateOperator(spec *Spec, users []User, dir string, o *options) error {
	for _, d := range []string{filepath.Join(dir, "accounts"), resolverDir(dir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	opKP, _, err := keyFile(operatorSeedFile(dir), nkeys.PrefixByteOperator, false)
	if err != nil {
		return err
	}
	opPub, _ := opKP.PublicKey()

	names := allAccounts(spec)
	accKP := map[string]nkeys.KeyPair{}
	accPub := map[string]string{}
	claims := map[string]*jwt.AccountClaims{}
	for _, acc := range names {
		kp, _, err := keyFile(accountSeedFile(dir, acc), nkeys.PrefixByteAccount, false)
		if err != nil {
			return err
		}
		pub, _ := kp.PublicKey()
		accKP[acc], accPub[acc] = kp, pub
		ac := jwt.NewAccountClaims(pub)
		ac.Name = acc
		// Revocations outlive regeneration: carry them over from the JWT
		// this directory holds.
		if prev, err := readAccountClaims(dir, pub); err == nil {
			ac.Revocations = prev.Revocations
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if acc == StoreAccount {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		claims[acc] = ac
	}
	for _, e := range exports(spec, newGraph(spec)) {
		typ := jwt.Stream
		if e.service {
			typ = jwt.Service
		}
		subj := jwt.Subject(e.subject)
		// An export that needs a token is visible only to the accounts
		// the exporter signed an activation for.
		claims[e.from].Exports.Add(&jwt.Export{Name: e.subject, Subject: subj, Type: typ, TokenReq: true})
		for _, to := range e.to {
			act := jwt.NewActivationClaims(accPub[to])
			act.ImportSubject, act.ImportType = subj, typ
			tok, err := act.Encode(accKP[e.from])
			if err != nil {
				return fmt.Errorf("accounts: activation of %s for %s: %w", e.subject, to, err)
			}
			claims[to].Imports.Add(&jwt.Import{Name: e.subject, Subject: subj, Account: accPub[e.from], Token: tok, Type: typ})
		}
	}

	now := o.now()
	for _, u := range users {
		acc := claims[u.Account]
		kp, replaced, err := keyFile(SeedFile(dir, u.Name), nkeys.PrefixByteUser, slices.Contains(o.rotate, u.Name))
		if err != nil {
			return err
		}
		pub, _ := kp.PublicKey()
		if replaced != "" {
			acc.Revoke(replaced)
		}
		if revokedAnywhere(claims, pub) {
			// A revoked key stays revoked only for JWTs issued before
			// the revocation; one issued now would be valid again.
			// The key was revoked because it leaked, so replace it. In
			// any account: a user that moved (the admin, from mesh to
			// STORE) keeps its key, not its account's revocations.
			if kp, _, err = keyFile(SeedFile(dir, u.Name), nkeys.PrefixByteUser, true); err != nil {
				return err
			}
			pub, _ = kp.PublicKey()
		}
		uc := jwt.NewUserClaims(pub)
		uc.Name = u.Name
		if u.Perms != nil {
			uc.Pub.Allow.Add(u.Perms.Publish...)
			uc.Sub.Allow.Add(u.Perms.Subscribe...)
			if r := u.Perms.Responses; r != nil {
				uc.Resp = &jwt.ResponsePermission{MaxMsgs: r.MaxMsgs, Expires: r.Expires}
			}
		}
		if o.userExpiry != 0 {
			uc.Expires = now.Add(o.userExpiry).Unix()
		}
		ujwt, err := uc.Encode(accKP[u.Account])
		if err != nil {
			return fmt.Errorf("accounts: user %s: %w", u.Name, err)
		}
		seed, _ := kp.Seed()
		creds, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			return fmt.Errorf("accounts: user %s: %w", u.Name, err)
		}
		if err := writeSecret(CredsFile(dir, u.Name), creds); err != nil {
			return err
		}
	}

	for _, acc := range names {
		if err := writeAccountJWT(dir, acc, claims[acc], opKP); err != nil {
			return err
		}
	}
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "natsmesh"
	oc.SystemAccount = accPub[SystemAccount]
	opJWT, err := oc.Encode(opKP)
	if err != nil {
		return fmt.Errorf("accounts: operator: %w", err)
	}
	var b strings.Builder
	b.WriteString(operatorHeader)
	b.WriteString(tlsBlock(o.tls))
	b.WriteString("operator: " + opJWT + "\n")
	b.WriteString("system_account: " + accPub[SystemAccount] + "\n")
	b.WriteString("jetstream: enabled\n\n")
	fmt.Fprintf(&b, "# Account JWTs by account: %s\n", accountList(names, accPub))
	b.WriteString("resolver: {\n  type: full\n  dir: " + strconv.Quote(resolverDir(abs)) + "\n  allow_delete: false\n  interval: \"2m\"\n}\n")
	return writeFile(ConfigFile(dir), []byte(b.String()), 0o644)
}

// revokedAnywhere reports whether the user key pub is revoked in any of
// the accounts.
func revokedAnywhere(claims map[string]*jwt.AccountClaims, pub string) bool {
	for _, ac := range claims {
		if _, revoked := ac.Revocations[pub]; revoked {
			return true
		}
	}
	return false
}

func accountList(names []string, pub map[string]string) string {
	var parts []string
	for _, n := range names {
		parts = append(parts, n+"="+pub[n])
	}
	return strings.Join(parts, " ")
}

const operatorHeader = `# Generated by natsmesh accounts generate --operator from the mesh file;
# regenerate instead of editing. Users authenticate with DIR/<user>.creds.
# Account JWTs live in the resolver directory; natsmesh accounts revoke
# pushes updates to a running server. The broker enforces subjects only:
# HTTP path rules are enforced by the receiving agent.

`

func writeAccountJWT(dir, acc string, ac *jwt.AccountClaims, op nkeys.KeyPair) error {
	tok, err := ac.Encode(op)
	if err != nil {
		return fmt.Errorf("accounts: account %s: %w", acc, err)
	}
	if err := writeFile(accountJWTFile(dir, ac.Subject), []byte(tok), 0o600); err != nil {
		return err
	}
	// The same JWT by name, for people and for Revoke.
	return writeFile(accountJWTLink(dir, acc), []byte(tok), 0o600)
}

func readAccountClaims(dir, pub string) (*jwt.AccountClaims, error) {
	data, err := os.ReadFile(accountJWTFile(dir, pub))
	if err != nil {
		return nil, err
	}
	ac, err := jwt.DecodeAccountClaims(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("accounts: %s: %w", accountJWTFile(dir, pub), err)
	}
	return ac, nil
}

// Revoke revokes the operator-mode credentials of user (a service, Bridge
// or the admin) in dir: it adds the user's key to its account JWT's
// revocations and, when natsURL is not empty, pushes the updated account
// JWT to the server there ($SYS.REQ.CLAIMS.UPDATE, as the system user of
// dir). The server then disconnects the user's connections and refuses new
// ones, without a restart. The next Generate gives the user a new key.
func Revoke(ctx context.Context, dir, user, natsURL string) error {
	data, err := os.ReadFile(CredsFile(dir, user))
	if err != nil {
		return fmt.Errorf("accounts: revoke %s: %w (not an operator-mode directory, or no such user)", user, err)
	}
	ujwt, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return fmt.Errorf("accounts: revoke %s: %w", user, err)
	}
	uc, err := jwt.DecodeUserClaims(ujwt)
	if err != nil {
		return fmt.Errorf("accounts: revoke %s: %w", user, err)
	}
	ac, err := readAccountClaims(dir, uc.Issuer)
	if err != nil {
		return fmt.Errorf("accounts: revoke %s: %w", user, err)
	}
	opKP, _, err := keyFile(operatorSeedFile(dir), nkeys.PrefixByteOperator, false)
	if err != nil {
		return err
	}
	// Revoke every JWT of the key issued up to now. Revocations have one
	// second resolution and cover JWTs issued in that second too.
	ac.RevokeAt(uc.Subject, time.Now())
	if err := writeAccountJWT(dir, ac.Name, ac, opKP); err != nil {
		return err
	}
	if natsURL == "" {
		return nil
	}
	return Push(ctx, dir, natsURL, ac.Name)
}

// Push sends the account JWTs of dir (all of them, or the named accounts)
// to the server at natsURL as the system user, so a running server applies
// changes (revocations, permissions of exports) without a restart.
func Push(ctx context.Context, dir, natsURL string, accounts ...string) error {
	nc, err := nats.Connect(natsURL, nats.UserCredentials(CredsFile(dir, SysUser)), nats.Name("natsmesh accounts"))
	if err != nil {
		return fmt.Errorf("accounts: push: connecting to %s as %s: %w", natsURL, SysUser, err)
	}
	defer nc.Close()
	if len(accounts) == 0 {
		entries, err := os.ReadDir(filepath.Join(dir, "accounts"))
		if err != nil {
			return fmt.Errorf("accounts: push: %w", err)
		}
		for _, e := range entries {
			if name, ok := strings.CutSuffix(e.Name(), ".jwt"); ok {
				accounts = append(accounts, name)
			}
		}
	}
	for _, acc := range accounts {
		tok, err := os.ReadFile(accountJWTLink(dir, acc))
		if err != nil {
			return fmt.Errorf("accounts: push: %w", err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := nc.RequestWithContext(rctx, "$SYS.REQ.CLAIMS.UPDATE", tok)
		cancel()
		if err != nil {
			return fmt.Errorf("accounts: push account %s: %w", acc, err)
		}
		var resp struct {
			Error *struct {
				Code        int    `json:"code"`
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			return fmt.Errorf("accounts: push account %s: reply %q: %w", acc, m.Data, err)
		}
		if resp.Error != nil {
			return fmt.Errorf("accounts: push account %s: server refused it: %s (%d)", acc, resp.Error.Description, resp.Error.Code)
		}
	}
	return nil
}
