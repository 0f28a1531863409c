package cliflag

import (
	"flag"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// ConfigFlag registers --config, the YAML file of a command's settings,
// on fs. It means the same in every command that has it; a nats-server
// configuration file is --nats-config (broker).
func ConfigFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "YAML `file` of settings named like these flags (flag: value; flags and environment win)")
}

// ApplyConfigFile sets the flags of fs that are still unset from a YAML file
// whose keys are flag names (service: orders, bind: [orders=127.0.0.1:9191]).
// The command line and the environment win over the file. An empty path
// does nothing.
func ApplyConfigFile(fs *flag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: --config: %v", fs.Name(), err)
	}
	// A nats-server file given where --nats-config was meant (the broker's
	// --config was that before): say so rather than just "unknown setting".
	hint := ""
	if fs.Lookup("nats-config") != nil {
		hint = " (--config is natsmesh's YAML settings; a nats-server configuration file goes in --nats-config)"
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("%s: --config %s: %v%s", fs.Name(), path, err, hint)
	}
	for key, v := range values {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("%s: --config %s: unknown setting %q%s", fs.Name(), path, key, hint)
		}
		name := key
		if a, ok := f.Value.(*alias); ok {
			name = a.target
		}
		if IsSet(fs, name) {
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
