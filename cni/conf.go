package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// confExtensions are the files the conf dir is searched for, as kubelet's
// and containerd's CNI loaders do.
var confExtensions = []string{".conflist", ".conf", ".json"}

// network is the configuration loaded from the conf dir: either a parsed
// list or the reason there is none.
type network struct {
	file  string
	bytes []byte // the file as read, to notice rewrites
	list  *libcni.NetworkConfigList
	err   error
}

// loadNetwork reads the first configuration file of dir.
func loadNetwork(dir string) *network {
	files, err := confFiles(dir)
	if err != nil {
		return &network{err: err}
	}
	if len(files) == 0 {
		return &network{err: fmt.Errorf("no network configuration (.conflist, .conf or .json) in %s", dir)}
	}
	file := files[0]
	n := &network{file: file}
	n.bytes, err = os.ReadFile(file)
	if err != nil {
		n.err = fmt.Errorf("read network configuration: %w", err)
		return n
	}
	n.list, err = parseNetwork(file, n.bytes)
	if err != nil {
		n.err = fmt.Errorf("network configuration %s: %w", file, err)
		n.list = nil
	}
	return n
}

// confFiles lists dir's configuration files in lexical order.
func confFiles(dir string) ([]string, error) {
	files, err := libcni.ConfFiles(dir, confExtensions)
	if err != nil {
		return nil, fmt.Errorf("read cni conf dir %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

// parseNetwork turns a .conflist, or a single plugin's .conf/.json, into a
// list and checks what libcni leaves to the runtime.
func parseNetwork(file string, data []byte) (*libcni.NetworkConfigList, error) {
	var (
		list *libcni.NetworkConfigList
		err  error
	)
	if filepath.Ext(file) == ".conflist" {
		list, err = libcni.NetworkConfFromBytes(data)
		if err == nil && !list.LoadOnlyInlinedPlugins {
			var more []*libcni.PluginConfig
			more, err = libcni.NetworkPluginConfsFromFiles(filepath.Dir(file), list.Name)
			list.Plugins = append(list.Plugins, more...)
		}
	} else {
		var conf *libcni.PluginConfig
		conf, err = libcni.NetworkPluginConfFromBytes(data)
		if err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return nil, err
	}
	if list.Name == "" {
		return nil, fmt.Errorf("network has no name")
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("network %q lists no plugins", list.Name)
	}
	if list.CNIVersion == "" {
		return nil, fmt.Errorf("network %q has no cniVersion", list.Name)
	}
	if newer, err := version.GreaterThan(list.CNIVersion, version.Current()); err != nil {
		return nil, fmt.Errorf("network %q: cniVersion: %w", list.Name, err)
	} else if newer {
		return nil, fmt.Errorf("network %q: cniVersion %s is newer than the %s Berth speaks", list.Name, list.CNIVersion, version.Current())
	}
	for i, p := range list.Plugins {
		if p.Network.Type == "" {
			return nil, fmt.Errorf("network %q: plugin %d has no type", list.Name, i)
		}
	}
	return list, nil
}

// findPlugins checks that every plugin of the network is installed.
func (n *network) findPlugins(binDirs []string) error {
	for _, p := range n.list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, binDirs); err != nil {
			return fmt.Errorf("network %q (%s): plugin %q not found in %v", n.list.Name, n.file, p.Network.Type, binDirs)
		}
	}
	return nil
}
