// Command terraform-provider-kvflow is kvflow's Terraform provider plugin,
// registry.terraform.io/kvflow/kvflow. Terraform starts it; run with -debug
// to serve it for a debugger (Terraform then attaches through
// TF_REATTACH_PROVIDERS).
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/kvflow/kvflow/terraform/provider"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	debug := flag.Bool("debug", false, "serve for a debugger (delve) instead of being started by Terraform")
	flag.Parse()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: provider.Address,
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
