package jsondiff

import (
	"slices"
	"testing"
)

// TestDiff: object keys join with dots, a list of named objects is keyed
// by name (a route inserted changes the list's names and adds its own
// leaves, not every route after it), another list of objects by index, a
// list of scalars is one leaf; added, removed and changed leaves each
// say so, sorted by path.
func TestDiff(t *testing.T) {
	old := `{"mode":"a","hosts":["x","y"],"routes":[{"name":"beta","w":1},{"name":"ga","w":2}],"subsets":[{"v":1}]}`
	new := `{"hosts":["x"],"routes":[{"name":"new","w":9},{"name":"beta","w":1},{"name":"ga","w":3}],"subsets":[{"v":2}],"extra":{"k":true}}`
	got, err := Diff([]byte(old), []byte(new))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{
		`+ extra.k: true`,
		`~ hosts: ["x","y"] -> ["x"]`,
		`- mode: "a"`,
		`~ routes: ["beta","ga"] -> ["new","beta","ga"]`,
		`~ routes[ga].w: 2 -> 3`,
		`+ routes[new].name: "new"`,
		`+ routes[new].w: 9`,
		`~ subsets[0].v: 1 -> 2`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("Diff:\n%q\nwant\n%q", lines, want)
	}
}

// TestDiffEmptyDocument: an empty text is an empty document; the same
// document twice has no change; bad JSON is an error, not a diff.
func TestDiffEmptyDocument(t *testing.T) {
	doc := []byte(`{"a":{"b":1},"l":[{"name":"x"},{"name":"x"}]}`)
	added, err := Diff(nil, doc)
	if err != nil {
		t.Fatal(err)
	}
	// Two objects of the same name: keyed by index.
	want := []Change{{Path: "a.b", New: "1"}, {Path: "l[0].name", New: `"x"`}, {Path: "l[1].name", New: `"x"`}}
	if !slices.Equal(added, want) {
		t.Errorf("Diff(nil, doc) = %v, want %v", added, want)
	}
	if removed, _ := Diff(doc, nil); len(removed) != 3 || removed[0].String() != "- a.b: 1" {
		t.Errorf("Diff(doc, nil) = %v, want the same leaves removed", removed)
	}
	if same, _ := Diff(doc, doc); len(same) != 0 {
		t.Errorf("Diff(doc, doc) = %v, want none", same)
	}
	if _, err := Diff([]byte("{"), doc); err == nil {
		t.Error("Diff of bad JSON: no error")
	}
}
