// Command zkgate is an API gateway whose backends come from ZooKeeper.
//
//	zkgate serve       [--config FILE]   run the gateway
//	zkgate validate    [--config FILE]   check a configuration file; exit 2 on error
//	zkgate healthcheck [--url URL]       exit 0 when the gateway is ready (for containers)
//	zkgate config push [--config FILE] ROUTES_FILE   write a file's routes and services to the fleet
//	zkgate config pull [--config FILE] [-o FILE]     print the fleet's routes and services as a file
//	zkgate version                       print the version
package main

import (
	"os"

	"github.com/zkgate/zkgate/internal/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
