package main

import (
	"flag"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// applyConfigFile sets the flags of fs that are still unset from a YAML file
// whose keys are flag names (service: orders, bind: [orders=127.0.0.1:9191]).
// The command line and the environment win over the file.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: --config: %v", fs.Name(), err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("%s: --config %s: %v", fs.Name(), path, err)
	}
	for key, v := range values {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("%s: --config %s: unknown setting %q", fs.Name(), path, key)
		}
		if isSet(fs, key) {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		for _, item := range list {
			if item == nil {
				continue // "subset:" with no value leaves the default
			}
			if err := fs.Set(key, fmt.Sprint(item)); err != nil {
				return fmt.Errorf("%s: --config %s: %s: %v", fs.Name(), path, key, err)
			}
		}
	}
	return nil
}
