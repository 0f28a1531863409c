package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// hasAuth reports whether opts authenticate clients in any way.
func hasAuth(o *server.Options) bool {
	return len(o.Users) > 0 || len(o.Nkeys) > 0 || len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0 ||
		o.Username != "" || o.Authorization != "" || o.CustomClientAuthentication != nil || o.AuthCallout != nil
}

// addSystemUser gives opts a system account with one NKey user whose seed
// is in path (created when missing), so `nats server ...` commands work
// against the broker. With exactly the global and the system account and
// no authorization block, nats-server itself keeps anonymous clients
// working by adding a no-auth user in the global account (see
// configureAccounts), so the default mode stays open.
func addSystemUser(opts *server.Options, path string) error {
	kp, err := loadOrCreateSeed(path)
	if err != nil {
		return err
	}
	pub, _ := kp.PublicKey()
	sys := server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT)
	opts.Accounts = append(opts.Accounts, sys)
	opts.SystemAccount = server.DEFAULT_SYSTEM_ACCOUNT
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub, Account: sys})
	return nil
}

func loadOrCreateSeed(path string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
		if err != nil {
			return nil, configErr("system user seed %s: not an NKey seed", path)
		}
		pub, _ := kp.PublicKey()
		if !nkeys.IsValidPublicUserKey(pub) {
			return nil, configErr("system user seed %s: not a user key", path)
		}
		return kp, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("broker: system user seed: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("broker: system user seed: %w", err)
	}
	seed, _ := kp.Seed()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("broker: system user seed: %w", err)
	}
	// O_EXCL: two brokers sharing a store must not overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("broker: system user seed: %w", err)
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		f.Close()
		return nil, fmt.Errorf("broker: system user seed: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("broker: system user seed: %w", err)
	}
	return kp, nil
}
