package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestSubjectString(t *testing.T) {
	tests := []struct {
		name string
		s    Subject
		want string
	}{
		{"http get", Subject{Service: "orders", Subset: "v1", Caller: "web", Proto: ProtoHTTP, Op: "GET"}, "mesh.orders.v1.web.http.GET"},
		{"empty subset is any", Subject{Service: "orders", Caller: "web", Proto: ProtoHTTP, Op: "GET"}, "mesh.orders._.web.http.GET"},
		{"any subset", Subject{Service: "orders", Subset: AnySubset, Caller: "web", Proto: ProtoHTTP, Op: "POST"}, "mesh.orders._.web.http.POST"},
		{"grpc method escaped", Subject{Service: "orders", Caller: "web", Proto: ProtoGRPC, Op: "/pkg.Orders/Get"}, "mesh.orders._.web.grpc.%2Fpkg%2EOrders%2FGet"},
		{"empty op", Subject{Service: "a", Caller: "b", Proto: ProtoHTTP}, "mesh.a._.b.http.%"},
		{"wildcards", Subject{Service: "a", Caller: "b", Proto: ProtoHTTP, Op: "*.>"}, "mesh.a._.b.http.%2A%2E%3E"},
		{"dollar and space", Subject{Service: "a", Caller: "b", Proto: ProtoHTTP, Op: "$SYS x"}, "mesh.a._.b.http.%24SYS%20x"},
		{"percent", Subject{Service: "a", Caller: "b", Proto: ProtoHTTP, Op: "%"}, "mesh.a._.b.http.%25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.String()
			if got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			if n := strings.Count(got, ".") + 1; n != 6 {
				t.Fatalf("%q has %d tokens, want 6", got, n)
			}
			p, err := ParseSubject(got)
			if err != nil {
				t.Fatalf("ParseSubject(%q): %v", got, err)
			}
			// The any-subset token reads back as "", however it was
			// written.
			want := tt.s
			want.Subset = NormalSubset(want.Subset)
			if p != want {
				t.Fatalf("ParseSubject(%q) = %+v, want %+v", got, p, want)
			}
		})
	}
}

func TestSubjectValidate(t *testing.T) {
	ok := Subject{Service: "orders", Subset: "v1", Caller: "web", Proto: ProtoHTTP}
	tests := []struct {
		name   string
		modify func(*Subject)
		valid  bool
	}{
		{"valid", func(*Subject) {}, true},
		{"any subset", func(s *Subject) { s.Subset = AnySubset }, true},
		{"empty subset", func(s *Subject) { s.Subset = "" }, true},
		{"grpc", func(s *Subject) { s.Proto = ProtoGRPC }, true},
		{"empty service", func(s *Subject) { s.Service = "" }, false},
		{"upper case", func(s *Subject) { s.Service = "Orders" }, false},
		{"dot in service", func(s *Subject) { s.Service = "a.b" }, false},
		{"star service", func(s *Subject) { s.Service = "*" }, false},
		{"gt caller", func(s *Subject) { s.Caller = ">" }, false},
		{"dollar", func(s *Subject) { s.Caller = "$sys" }, false},
		{"space", func(s *Subject) { s.Subset = "v 1" }, false},
		{"tab", func(s *Subject) { s.Subset = "v\t1" }, false},
		{"control byte", func(s *Subject) { s.Service = "a\x00" }, false},
		{"invalid utf8", func(s *Subject) { s.Service = "a\xff" }, false},
		{"leading dash", func(s *Subject) { s.Service = "-a" }, false},
		{"trailing dash", func(s *Subject) { s.Service = "a-" }, false},
		{"inner dash", func(s *Subject) { s.Service = "a-b" }, true},
		{"63 chars", func(s *Subject) { s.Service = strings.Repeat("a", 63) }, true},
		{"64 chars", func(s *Subject) { s.Service = strings.Repeat("a", 64) }, false},
		{"unknown proto", func(s *Subject) { s.Proto = "ftp" }, false},
		{"empty caller", func(s *Subject) { s.Caller = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.modify(&s)
			err := s.Validate()
			if tt.valid && err != nil {
				t.Fatalf("Validate(%+v) = %v, want nil", s, err)
			}
			if !tt.valid && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Validate(%+v) = %v, want ErrInvalidName", s, err)
			}
		})
	}
}

func TestParseSubjectRejects(t *testing.T) {
	tests := []string{
		"",
		"mesh",
		"mesh.orders._.web.http",
		"mesh.orders._.web.http.GET.extra",
		"other.orders._.web.http.GET",
		"mesh.orders..web.http.GET", // empty subset token: would print back as "_"
		"mesh..v1.web.http.GET",
		"mesh.orders.v1..http.GET",
		"mesh.orders.v1.web..GET",
		"mesh.orders.v1.web.http.",
		"mesh.orders.v1.web.ftp.GET",
		"mesh.Orders.v1.web.http.GET",
		"mesh.*.v1.web.http.GET",
		"mesh.orders.>.web.http.GET",
		"mesh.orders.v1.web.http.*",
		"mesh.orders.v1.web.http.>",
		"mesh.orders.v1.web.http.%2e",  // lower-case hex
		"mesh.orders.v1.web.http.%41",  // escaped safe byte
		"mesh.orders.v1.web.http.%4",   // truncated
		"mesh.orders.v1.web.http.G%",   // truncated
		"mesh.orders.v1.web.http.%%",   // bad escape
		"mesh.orders.v1.web.http.%ZZ",  // bad hex
		"mesh.orders.v1.web.http.a b",  // whitespace
		"mesh.orders.v1.web.http.$SYS", // dollar
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			p, err := ParseSubject(s)
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseSubject(%q) = %+v, %v; want ErrInvalidName", s, p, err)
			}
		})
	}
}

func TestEscapeToken(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "%"},
		{"safe", "Get-Item_2", "Get-Item_2"},
		{"dot", "a.b", "a%2Eb"},
		{"star", "*", "%2A"},
		{"gt", ">", "%3E"},
		{"dollar", "$JS", "%24JS"},
		{"space", " ", "%20"},
		{"tab newline", "\t\r\n", "%09%0D%0A"},
		{"nul and del", "\x00\x7f", "%00%7F"},
		{"percent", "%", "%25"},
		{"percent hex look-alike", "%41", "%2541"},
		{"utf8", "é", "%C3%A9"},
		{"invalid utf8", "\xff\xfe", "%FF%FE"},
		{"slash", "/a/b", "%2Fa%2Fb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EscapeToken(tt.in)
			if got != tt.want {
				t.Fatalf("EscapeToken(%q) = %q, want %q", tt.in, got, tt.want)
			}
			back, err := UnescapeToken(got)
			if err != nil || back != tt.in {
				t.Fatalf("UnescapeToken(%q) = %q, %v; want %q", got, back, err, tt.in)
			}
		})
	}
}

func TestUnescapeTokenRejects(t *testing.T) {
	for _, tok := range []string{"", "a.b", "*", ">", "$", " ", "a%", "%2", "%2e", "%41", "%5F", "%zz", "%%", "é"} {
		t.Run(tok, func(t *testing.T) {
			if got, err := UnescapeToken(tok); !errors.Is(err, ErrInvalidName) {
				t.Fatalf("UnescapeToken(%q) = %q, %v; want ErrInvalidName", tok, got, err)
			}
		})
	}
}

func TestServiceSubjects(t *testing.T) {
	tests := []struct {
		name, service, subset string
		subjects, queues      []string
	}{
		{"no subset", "orders", "", []string{"mesh.orders._.>"}, []string{"orders"}},
		{"any subset", "orders", AnySubset, []string{"mesh.orders._.>"}, []string{"orders"}},
		{"subset", "orders", "v1", []string{"mesh.orders._.>", "mesh.orders.v1.>"}, []string{"orders", "orders.v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subjects, queues := ServiceSubjects(tt.service, tt.subset)
			if strings.Join(subjects, " ") != strings.Join(tt.subjects, " ") || strings.Join(queues, " ") != strings.Join(tt.queues, " ") {
				t.Fatalf("ServiceSubjects = %q %q, want %q %q", subjects, queues, tt.subjects, tt.queues)
			}
		})
	}
}

// TestNormalSubset: issue 17 item 2. Any subset is "" in memory, however
// a user wrote it; AnySubset is only the subject's token.
func TestNormalSubset(t *testing.T) {
	for in, want := range map[string]string{"": "", AnySubset: "", "v2": "v2"} {
		if got := NormalSubset(in); got != want {
			t.Errorf("NormalSubset(%q) = %q, want %q", in, got, want)
		}
	}
	s, err := ParseSubject("mesh.orders._.web.http.GET")
	if err != nil || s.Subset != "" {
		t.Fatalf("ParseSubject: subset %q, err %v; want \"\"", s.Subset, err)
	}
	if got := s.String(); got != "mesh.orders._.web.http.GET" {
		t.Errorf("String() = %q", got)
	}
}

func TestCutPairInbox(t *testing.T) {
	for _, tc := range []struct {
		subject, rest string
		ok            bool
	}{
		{"_INBOX_mesh.orders.web.abc.1", "abc.1", true},
		{"_INBOX_mesh.orders.web.", "", true},
		{"_INBOX_mesh.orders.web", "", false},
		{"_INBOX_mesh.orders.webx.abc", "", false},
		{"_INBOX_mesh.ordersx.web.abc", "", false},
		{"_INBOX_mesh.orders.ab.web.abc", "", false},
		{"_INBOX_mesh.orders", "", false},
		{"_INBOX_mesh.web.orders.abc", "", false},
		{"_INBOX.orders.web.abc", "", false},
	} {
		rest, ok := CutPairInbox(tc.subject, "orders", "web")
		if rest != tc.rest || ok != tc.ok {
			t.Errorf("CutPairInbox(%q) = %q, %v; want %q, %v", tc.subject, rest, ok, tc.rest, tc.ok)
		}
		if want := strings.HasPrefix(tc.subject, PairInbox("orders", "web")+"."); ok != want {
			t.Errorf("CutPairInbox(%q) says %v, PairInbox's prefix %v", tc.subject, ok, want)
		}
	}
}
