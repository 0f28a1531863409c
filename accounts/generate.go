package accounts

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/natsmesh/natsmesh/wire"
)

// Option changes how Generate works.
type Option func(*options)

type options struct {
	tls        *TLS
	operator   bool
	rotate     []string
	userExpiry time.Duration
	now        func() time.Time
}

// TLS names the PEM files of the server's client TLS for WithTLS. Paths
// are written as given: give absolute ones for a config that is loaded
// from anywhere.
type TLS struct {
	// CertFile and KeyFile are the server certificate and its key.
	// Required.
	CertFile, KeyFile string
	// CAFile, if set, makes the server require and verify client
	// certificates signed by it (mutual TLS: "verify: true").
	CAFile string
}

// WithTLS makes the generated configuration serve clients over TLS only
// (a tls block). `natsmesh broker --nats-config` also secures routes and leaf
// nodes with it unless told otherwise (see broker.Cluster.TLS).
func WithTLS(t TLS) Option { return func(o *options) { o.tls = &t } }

// tlsBlock renders t as a nats-server tls block; "" for nil.
func tlsBlock(t *TLS) string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("tls {\n")
	fmt.Fprintf(&b, "  cert_file: %s\n  key_file: %s\n", strconv.Quote(t.CertFile), strconv.Quote(t.KeyFile))
	if t.CAFile != "" {
		fmt.Fprintf(&b, "  ca_file: %s\n  verify: true\n", strconv.Quote(t.CAFile))
	}
	b.WriteString("}\n\n")
	return b.String()
}

// WithOperator makes Generate write operator mode (JWTs and .creds files)
// instead of a server configuration with NKey users.
func WithOperator() Option { return func(o *options) { o.operator = true } }

// WithRotate makes Generate replace the keys of the named users (services,
// Bridge, the admin or SysUser) instead of keeping them. In operator mode
// the replaced user keys are also revoked in their account JWT.
func WithRotate(users ...string) Option {
	return func(o *options) { o.rotate = append(o.rotate, users...) }
}

// WithUserExpiry makes operator-mode user JWTs expire d after Generate
// runs; the server then refuses them and disconnects users still
// connected. Default: user JWTs do not expire.
func WithUserExpiry(d time.Duration) Option { return func(o *options) { o.userExpiry = d } }

// Generate writes the NATS authorization of spec into dir (created, mode
// 0700, if missing): ConfigFile(dir), and the key of each user in
// SeedFile(dir, user) (plus CredsFile in operator mode). Existing keys are
// kept unless WithRotate names them, so regenerating after a change of the
// mesh file does not invalidate the credentials services hold.
//
// The configuration runs unchanged on a stock nats-server
// (nats-server -c DIR/nats.conf) and on natsmesh broker --nats-config; it turns
// JetStream on (for the policies bucket, in StoreAccount only) and
// refuses anonymous connections. Errors for an invalid spec wrap ErrSpec.
func Generate(spec Spec, dir string, opts ...Option) error {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	users, err := spec.Users()
	if err != nil {
		return err
	}
	for _, r := range o.rotate {
		if !slices.ContainsFunc(users, func(u User) bool { return u.Name == r }) {
			return specErr("rotate %q: no such user", r)
		}
	}
	if t := o.tls; t != nil && (t.CertFile == "" || t.KeyFile == "") {
		return specErr("tls: both a certificate and a key file are needed")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	if o.operator {
		return generateOperator(&spec, users, dir, &o)
	}
	keys := make(map[string]string, len(users)) // user -> public key
	for _, u := range users {
		kp, _, err := keyFile(SeedFile(dir, u.Name), nkeys.PrefixByteUser, slices.Contains(o.rotate, u.Name))
		if err != nil {
			return err
		}
		keys[u.Name], _ = kp.PublicKey()
	}
	return writeFile(ConfigFile(dir), serverConfig(&spec, users, keys, o.tls), 0o644)
}

// accountNames returns DefaultAccount and then the declared accounts in
// order: the service accounts.
func accountNames(spec *Spec) []string {
	names := []string{DefaultAccount}
	for _, a := range spec.Accounts {
		if a.Name != DefaultAccount {
			names = append(names, a.Name)
		}
	}
	return names
}

// allAccounts are the service accounts, StoreAccount and SystemAccount.
func allAccounts(spec *Spec) []string {
	return append(accountNames(spec), StoreAccount, SystemAccount)
}

// An export makes subject of account from visible in the accounts to,
// which import it under the same subject. A stream export delivers each
// message published there, reply subject unchanged; a service export
// lets the importers' requests reach the exporting account with a "_R_"
// reply that the broker maps back into the requester's account.
type export struct {
	from    string
	service bool
	subject string
	to      []string
}

// exports are every export and import of the configuration:
//
//   - StoreAccount exports to every service account the stream of the
//     policies bucket's messages, the service of its direct get, and the
//     stream of discovery requests ($SRV.>); each service account exports
//     the stream of discovery answers to the admin back;
//   - for each caller C in account A that may call a service S in another
//     account B: A exports to B the streams of C's calls to S
//     (mesh.S.*.C.>, and mesh-inst.S.*.C.> addressed to one instance), C's
//     census of S's instances ($SRV.STATUS.S.C), C's stream messages to S
//     (_INBOX_mesh.S.C.>), and
//     B exports to A the stream of S's replies to C (_INBOX_mesh.C.S.>).
//
// Calls cross accounts as streams, not services, so a message keeps its
// reply subject (the pair inbox) and no "_R_" reply, which only response
// permissions could answer, exists.
func exports(spec *Spec, g *graph) []export {
	var out []export
	add := func(from string, service bool, subject, to string) {
		for i := range out {
			if e := &out[i]; e.from == from && e.service == service && e.subject == subject {
				if !slices.Contains(e.to, to) {
					e.to = append(e.to, to)
				}
				return
			}
		}
		out = append(out, export{from: from, service: service, subject: subject, to: []string{to}})
	}
	services := accountNames(spec)
	for _, a := range services {
		add(StoreAccount, false, kvSubjects, a)
		add(StoreAccount, true, directGet, a)
		add(StoreAccount, false, discoverySubjects, a)
	}
	for _, a := range services {
		add(a, false, wire.PairInbox(spec.admin(), wire.PeerSRV)+".>", StoreAccount)
	}
	for _, e := range g.edges {
		a, b := g.account[e.caller], g.account[e.callee]
		if a == b {
			continue
		}
		add(a, false, wire.Prefix+"."+e.callee+".*."+e.caller+".>", b)
		add(a, false, wire.InstancePrefix+"."+e.callee+".*."+e.caller+".>", b)
		add(a, false, "$SRV.STATUS."+e.callee+"."+e.caller, b)
		add(a, false, wire.PairInbox(e.callee, e.caller)+".>", b)
		add(b, false, wire.PairInbox(e.caller, e.callee)+".>", a)
	}
	return out
}

// serverConfig renders the nats-server configuration of server-config mode.
func serverConfig(spec *Spec, users []User, keys map[string]string, t *TLS) []byte {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(tlsBlock(t))
	b.WriteString("jetstream: enabled\n")
	b.WriteString("system_account: " + SystemAccount + "\n\n")
	b.WriteString("accounts {\n")
	exps := exports(spec, newGraph(spec))
	for _, acc := range allAccounts(spec) {
		fmt.Fprintf(&b, "  %s {\n", acc)
		if acc == StoreAccount {
			b.WriteString("    # The policies bucket lives here, in the only account with JetStream.\n    jetstream: enabled\n")
		}
		b.WriteString("    users: [\n")
		for _, u := range users {
			if u.Account != acc {
				continue
			}
			fmt.Fprintf(&b, "      # %s\n      {\n        nkey: %s\n", u.Name, keys[u.Name])
			if p := u.Perms; p != nil {
				b.WriteString("        permissions: {\n")
				writeList(&b, "          publish: { allow: ", p.Publish)
				writeList(&b, "          subscribe: { allow: ", p.Subscribe)
				if r := p.Responses; r != nil {
					fmt.Fprintf(&b, "          allow_responses: { max: %d, expires: %s }\n", r.MaxMsgs, strconv.Quote(r.Expires.String()))
				}
				b.WriteString("        }\n")
			}
			b.WriteString("      }\n")
		}
		b.WriteString("    ]\n")
		var ex, im []string
		for _, e := range exps {
			kind := "stream"
			if e.service {
				kind = "service"
			}
			if e.from == acc {
				ex = append(ex, fmt.Sprintf("{ %s: %s, accounts: [%s] }", kind, strconv.Quote(e.subject), strings.Join(e.to, ", ")))
			}
			if slices.Contains(e.to, acc) {
				im = append(im, fmt.Sprintf("{ %s: { account: %s, subject: %s } }", kind, e.from, strconv.Quote(e.subject)))
			}
		}
		if len(ex) > 0 {
			b.WriteString("    exports: [\n      " + strings.Join(ex, "\n      ") + "\n    ]\n")
		}
		if len(im) > 0 {
			b.WriteString("    imports: [\n      " + strings.Join(im, "\n      ") + "\n    ]\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

const header = `# Generated by natsmesh accounts generate from the mesh file; regenerate
# instead of editing. Every connection authenticates with an NKey (its seed
# is DIR/<user>.nk); anonymous connections are refused. The broker enforces
# subjects only: HTTP path rules are enforced by the receiving agent.

`

func writeList(b *strings.Builder, prefix string, list []string) {
	b.WriteString(prefix + "[\n")
	for _, s := range list {
		b.WriteString("            " + strconv.Quote(s) + "\n")
	}
	b.WriteString("          ] }\n")
}
