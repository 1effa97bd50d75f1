// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the
// version the pinned Kubernetes release uses, for the end-to-end cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
