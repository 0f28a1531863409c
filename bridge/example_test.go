package bridge_test

import (
	"fmt"

	"github.com/natsmesh/natsmesh/bridge"
)

func ExampleSubject() {
	s := bridge.Subject{Service: "orders", Subset: "v2", Caller: "web", Proto: bridge.ProtoGRPC, Op: "/shop.Orders/Get"}
	fmt.Println(s)
	back, err := bridge.ParseSubject(s.String())
	fmt.Println(back.Op, err)
	// Output:
	// mesh.orders.v2.web.grpc.%2Fshop%2EOrders%2FGet
	// /shop.Orders/Get <nil>
}

func ExampleParseRoute() {
	for _, s := range []string{"api.example.com=orders", "/v2/orders=orders@v2+strip", "/time=nats:svc.time"} {
		r, err := bridge.ParseRoute(s)
		fmt.Printf("host=%q prefix=%q service=%q subset=%q subject=%q strip=%v err=%v\n",
			r.Host, r.PathPrefix, r.Service, r.Subset, r.Subject, r.StripPrefix, err)
	}
	// Output:
	// host="api.example.com" prefix="" service="orders" subset="" subject="" strip=false err=<nil>
	// host="" prefix="/v2/orders" service="orders" subset="v2" subject="" strip=true err=<nil>
	// host="" prefix="/time" service="" subset="" subject="svc.time" strip=false err=<nil>
}
