package bridge_test

import (
	"fmt"

	"github.com/natsmesh/natsmesh/bridge"
)

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
