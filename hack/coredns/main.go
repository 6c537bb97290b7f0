// Command coredns is CoreDNS with only the plugins the local test cluster needs.
//
// Upstream CoreDNS compiles in every plugin (cloud DNS back ends, forward, ...).
// This build links the Kubernetes back end and the small plugins around it and
// nothing that could send a query off the machine: there is no forward, no
// external back end. Names outside the configured zones are answered REFUSED by
// the server itself. Plugins register themselves in init functions; the order in
// which they run is fixed by CoreDNS's directive list, not by these imports.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
