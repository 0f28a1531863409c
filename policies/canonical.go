package policies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/natsmesh/natsmesh/internal/jsondiff"
)

// Canonical returns a copy of f as it is rendered: the defaults filled in
// with the built-in values, so a reader sees every default that applies.
// It means the same as f.
func (f *File) Canonical() *File {
	c := deepCopy(reflect.ValueOf(f)).Interface().(*File)
	d := BuiltinPolicy()
	merge(&d, c.Defaults)
	c.Defaults = &d
	return c
}

// JSON renders f canonically: fields in the order of the Go types, map
// keys sorted, durations and percentages normalized, defaults filled in
// (see Canonical), indented so that errors in it name a useful line. It
// parses back to the same file.
func (f *File) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(f.Canonical(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("policies: render: %w", err)
	}
	return append(b, '\n'), nil
}

// YAML renders f canonically as JSON does, in YAML block style.
func (f *File) YAML() ([]byte, error) { return ToYAML(f.Canonical()) }

// ToYAML renders any value as its JSON rendering reads in YAML block
// style, so the YAML and JSON output of one value always agree.
func ToYAML(v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("policies: render: %w", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(js, &n); err != nil {
		return nil, fmt.Errorf("policies: render: %w", err)
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("policies: render: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("policies: render: %w", err)
	}
	return buf.Bytes(), nil
}

// blockStyle drops the flow (JSON) style of every node; short lists of
// scalars stay on one line, as people write them.
func blockStyle(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!str" {
			n.Style = 0 // the encoder quotes what would read as another type
		}
		return
	}
	n.Style = 0
	if n.Kind == yaml.SequenceNode && len(n.Content) > 0 && !slices.ContainsFunc(n.Content, func(c *yaml.Node) bool { return c.Kind != yaml.ScalarNode }) {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// ServiceView is one service as `natsmesh policy get SERVICE` shows it:
// the service as written, and the merged policy of its calls.
type ServiceView struct {
	Name    string   `json:"name"`
	Service *Service `json:"service"`
	// Policy is the merged policy of calls that match no route.
	Policy Policy `json:"policy"`
	// Routes are the merged policies of each route, in order.
	Routes []RoutePolicy `json:"routes,omitempty"`
}

// RoutePolicy is the merged policy of one route.
type RoutePolicy struct {
	Name   string `json:"name"`
	Policy Policy `json:"policy"`
}

// View returns the ServiceView of the named service, or false if f has no
// such service.
func (f *File) View(service string) (*ServiceView, bool) {
	s := f.Services[service]
	if s == nil {
		return nil, false
	}
	v := &ServiceView{Name: service, Service: s, Policy: f.Policy(service, "")}
	for _, r := range s.Routes {
		v.Routes = append(v.Routes, RoutePolicy{Name: r.Name, Policy: f.Policy(service, r.Name)})
	}
	return v, true
}

// Change is one difference between two files, at a field path of the
// canonical rendering (package internal/jsondiff: routes are keyed by
// name, "services.orders.routes[beta].split", and their order is the
// value of the list's own path). Old is "" for an added field, New for a
// removed one; both are JSON values.
type Change = jsondiff.Change

// Diff lists what changes from old to new (either may be nil, an empty
// mesh), sorted by path: what `natsmesh policy apply` would change.
func Diff(old, new *File) []Change {
	changes, _ := jsondiff.Diff(canonicalJSON(old), canonicalJSON(new))
	return changes
}

// canonicalJSON is f's canonical rendering, compact; none for a nil file
// (an empty mesh).
func canonicalJSON(f *File) []byte {
	if f == nil {
		return nil
	}
	js, err := json.Marshal(f.Canonical())
	if err != nil {
		return nil
	}
	return js
}
