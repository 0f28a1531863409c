package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestInstanceSubject(t *testing.T) {
	s := Subject{Service: "orders", Instance: "AbC123", Caller: "web", Proto: ProtoGRPC, Op: "/pkg.S/M"}
	got := s.String()
	if want := "mesh-inst.orders.AbC123.web.grpc.%2Fpkg%2ES%2FM"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	p, err := ParseSubject(got)
	if err != nil || p != s {
		t.Fatalf("ParseSubject(%q) = %+v, %v; want %+v", got, p, err, s)
	}
	if proto, op, ok := SubjectOp(got); !ok || proto != ProtoGRPC || op != "/pkg.S/M" {
		t.Fatalf("SubjectOp(%q) = %q %q %v", got, proto, op, ok)
	}
	if !IsCallSubject(got) || !IsCallSubject("mesh.orders._.web.http.GET") || IsCallSubject("meshy.a") || IsCallSubject("mesh-instance.a") {
		t.Fatal("IsCallSubject")
	}
	if to, ok := ToInstance("mesh.orders.v1.web.http.GET", "AbC123"); !ok || to != "mesh-inst.orders.AbC123.web.http.GET" {
		t.Fatalf("ToInstance = %q, %v", to, ok)
	}
	for _, bad := range [][2]string{
		{"mesh.orders.v1.web.http.GET", "a.b"},
		{"mesh.orders.v1.web.http.GET", ""},
		{"mesh.orders.v1.web.http.GET", "a*"},
		{"mesh-inst.orders.X.web.http.GET", "Y"},
		{"nats.x", "Y"},
		{"mesh.orders", "Y"},
	} {
		if to, ok := ToInstance(bad[0], bad[1]); ok {
			t.Errorf("ToInstance(%q, %q) = %q, want refused", bad[0], bad[1], to)
		}
	}
}

func TestInstanceSubjectRejects(t *testing.T) {
	for _, subj := range []string{
		"mesh-inst.orders._.web.http.GET",   // the any-subset token is no instance
		"mesh-inst.orders.a-b.web.http.GET", // not [A-Za-z0-9]
		"mesh-inst.orders." + strings.Repeat("a", 65) + ".web.http.GET",
		"mesh-inst.orders.ID.Web.http.GET",
		"mesh-inst.Orders.ID.web.http.GET",
		"mesh-inst.orders.ID.web.ftp.GET",
		"mesh-inst.orders.ID.web.http",
		"mesh-inst..ID.web.http.GET",
	} {
		if s, err := ParseSubject(subj); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseSubject(%q) = %+v, %v; want ErrInvalidName", subj, s, err)
		}
	}
	if err := (Subject{Service: "orders", Subset: "v1", Instance: "ID", Caller: "web", Proto: ProtoHTTP}).Validate(); !errors.Is(err, ErrInvalidName) {
		t.Errorf("a subset and an instance: %v, want ErrInvalidName", err)
	}
	if !ValidInstance(strings.Repeat("Z", 64)) || ValidInstance(strings.Repeat("Z", 65)) || ValidInstance("") {
		t.Error("ValidInstance's bounds")
	}
	// Each end of each range, and the byte just past it.
	for _, ok := range []string{"a", "z", "A", "Z", "0", "9", "aZ09"} {
		if !ValidInstance(ok) {
			t.Errorf("ValidInstance(%q) = false", ok)
		}
	}
	for _, bad := range []string{"`", "{", "@", "[", "/", ":", "-", "_", ".", "*", ">", "é"} {
		if ValidInstance(bad) {
			t.Errorf("ValidInstance(%q) = true", bad)
		}
	}
	if got := InstanceSubject("orders", "ID1"); got != "mesh-inst.orders.ID1.>" {
		t.Errorf("InstanceSubject = %q", got)
	}
}
