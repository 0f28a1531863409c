package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/policies"
)

var accountsCommand = command{
	name:    "accounts",
	summary: "generate the NATS accounts, users and permissions of the mesh; revoke a user",
	run:     runAccounts,
}

// specFromFile reads the mesh file at path into the accounts package's
// model. Parse errors (file:line: field) are usage errors: exit 2.
func specFromFile(path string) (accounts.Spec, error) {
	f, err := policies.ParseFile(path)
	if err != nil {
		return accounts.Spec{}, usageErrorf("accounts generate: %v", err)
	}
	return f.AccountsSpec(), nil
}

func runAccounts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stderr, accountsUsage)
		if len(args) == 0 {
			return usageErrorf("accounts: want a subcommand: generate or revoke")
		}
		return nil
	}
	switch args[0] {
	case "generate":
		return runAccountsGenerate(args[1:], stdout, stderr)
	case "revoke":
		return runAccountsRevoke(ctx, args[1:], stdout, stderr)
	}
	return usageErrorf("accounts: unknown subcommand %q (want generate or revoke)", args[0])
}

const accountsUsage = `Usage: natsmesh accounts generate -f mesh.yaml -o DIR [--operator] [--rotate USER] [--tls-cert F --tls-key F [--tls-ca F]]
       natsmesh accounts revoke USER -d DIR [--nats URL]

generate writes DIR/nats.conf (for natsmesh broker --nats-config DIR/nats.conf or
nats-server -c DIR/nats.conf) and one NKey seed per user (DIR/<user>.nk, 0600;
with --operator also DIR/<user>.creds). Existing keys are kept unless --rotate
names the user. revoke revokes an operator-mode user on a running server.
`

func runAccountsGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("accounts generate", "-f mesh.yaml -o DIR [flags]",
		"Generates the NATS accounts, users and permissions of the mesh from the mesh file.", stderr)
	var (
		file, dir string
		operator  bool
		rotate    stringList
		tlsCfg    accounts.TLS
	)
	fs.StringVar(&file, "f", "mesh.yaml", "mesh `file`")
	fs.StringVar(&dir, "o", "", "output `directory` (created, mode 0700)")
	fs.BoolVar(&operator, "operator", false, "operator mode: JWTs and .creds files, revocable without a restart")
	fs.Var(&rotate, "rotate", "replace the keys of these `users` (services, bridge, admin, sys), comma-separated or repeated")
	fs.StringVar(&tlsCfg.CertFile, "tls-cert", "", "server certificate `file` (PEM): the config serves clients over TLS only")
	fs.StringVar(&tlsCfg.KeyFile, "tls-key", "", "server key `file` (PEM)")
	fs.StringVar(&tlsCfg.CAFile, "tls-ca", "", "CA `file` (PEM): clients must present a certificate it signed (mutual TLS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if dir == "" {
		return usageErrorf("accounts generate: -o DIR is required")
	}
	if tlsCfg != (accounts.TLS{}) {
		if tlsCfg.CertFile == "" || tlsCfg.KeyFile == "" {
			return usageErrorf("accounts generate: --tls-cert and --tls-key go together")
		}
		// The config may be loaded from anywhere.
		for _, p := range []*string{&tlsCfg.CertFile, &tlsCfg.KeyFile, &tlsCfg.CAFile} {
			if *p != "" {
				abs, err := filepath.Abs(*p)
				if err != nil {
					return failure{err}
				}
				*p = abs
			}
		}
	}
	spec, err := specFromFile(file)
	if err != nil {
		return err
	}
	opts := []accounts.Option{accounts.WithRotate(rotate.Values...)}
	if tlsCfg.CertFile != "" {
		opts = append(opts, accounts.WithTLS(tlsCfg))
	}
	if operator {
		opts = append(opts, accounts.WithOperator())
	}
	if err := accounts.Generate(spec, dir, opts...); err != nil {
		if errors.Is(err, accounts.ErrSpec) {
			return err
		}
		return failure{err}
	}
	key := "--nkey " + accounts.SeedFile(dir, "SERVICE")
	if operator {
		key = "--creds " + accounts.CredsFile(dir, "SERVICE")
	}
	fmt.Fprintf(stdout, "wrote %s\nrun: natsmesh broker --nats-config %s\nagents: natsmesh agent --service SERVICE %s ...\n",
		accounts.ConfigFile(dir), accounts.ConfigFile(dir), key)
	return nil
}

func runAccountsRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var user string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		user, args = args[0], args[1:]
	}
	fs := newFlagSet("accounts revoke", "USER -d DIR [flags]",
		"Revokes an operator-mode user: its key goes into its account JWT's revocations,\n"+
			"which is pushed to the running server; the user is disconnected and refused.", stderr)
	var dir, url string
	fs.StringVar(&dir, "d", "", "`directory` written by natsmesh accounts generate --operator")
	fs.StringVar(&url, "nats", nats.DefaultURL, "NATS server `URL` to push the account JWT to (\"\" to only update DIR)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if user == "" || dir == "" {
		return usageErrorf("accounts revoke: want USER and -d DIR")
	}
	if err := accounts.Revoke(ctx, dir, user, url); err != nil {
		return failure{err}
	}
	fmt.Fprintf(stdout, "revoked %s\n", user)
	return nil
}
