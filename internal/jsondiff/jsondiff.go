package jsondiff

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Change is one difference between two documents, at a field path. Old is
// "" for an added leaf, New for a removed one; both are JSON values.
type Change struct {
	Path     string
	Old, New string
}

func (c Change) String() string {
	switch {
	case c.Old == "":
		return "+ " + c.Path + ": " + c.New
	case c.New == "":
		return "- " + c.Path + ": " + c.Old
	}
	return "~ " + c.Path + ": " + c.Old + " -> " + c.New
}

// Diff lists what changes from the JSON document old to new, sorted by
// path. An empty text (nil) is an empty document: everything in the other
// is added, or removed.
func Diff(old, new []byte) ([]Change, error) {
	a, err := Leaves(old)
	if err != nil {
		return nil, err
	}
	b, err := Leaves(new)
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, p := range slices.Sorted(maps.Keys(a)) {
		if nv, ok := b[p]; !ok {
			out = append(out, Change{Path: p, Old: a[p]})
		} else if nv != a[p] {
			out = append(out, Change{Path: p, Old: a[p], New: nv})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[p]; !ok {
			out = append(out, Change{Path: p, New: b[p]})
		}
	}
	slices.SortStableFunc(out, func(x, y Change) int { return strings.Compare(x.Path, y.Path) })
	return out, nil
}

// Leaves maps every leaf of the JSON document doc to its path; an empty
// text has none.
func Leaves(doc []byte) (map[string]string, error) {
	out := map[string]string{}
	if len(doc) == 0 {
		return out, nil
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("jsondiff: %w", err)
	}
	leaves(out, "", v)
	return out, nil
}

func leaves(out map[string]string, path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			leaves(out, join(path, k), e)
		}
		return
	case []any:
		if names, ok := namedList(v); ok {
			out[path] = leaf(names)
			for i, e := range v {
				leaves(out, path+"["+names[i]+"]", e)
			}
			return
		}
		if slices.ContainsFunc(v, func(e any) bool { _, ok := e.(map[string]any); return ok }) {
			for i, e := range v {
				leaves(out, fmt.Sprintf("%s[%d]", path, i), e)
			}
			return
		}
	}
	out[path] = leaf(v)
}

// namedList returns the names of a list of objects that each have a
// distinct "name".
func namedList(l []any) ([]string, bool) {
	names := make([]string, len(l))
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		n, ok := m["name"].(string)
		if !ok || n == "" || slices.Contains(names[:i], n) {
			return nil, false
		}
		names[i] = n
	}
	return names, len(l) > 0
}

func leaf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
