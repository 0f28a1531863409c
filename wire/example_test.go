package wire_test

import (
	"fmt"

	"github.com/natsmesh/natsmesh/wire"
)

func ExampleSubject() {
	s := wire.Subject{Service: "orders", Subset: "v2", Caller: "web", Proto: wire.ProtoGRPC, Op: "/shop.Orders/Get"}
	fmt.Println(s)
	back, err := wire.ParseSubject(s.String())
	fmt.Println(back.Op, err)
	// Output:
	// mesh.orders.v2.web.grpc.%2Fshop%2EOrders%2FGet
	// /shop.Orders/Get <nil>
}
