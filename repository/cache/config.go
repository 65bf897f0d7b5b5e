package cache

import (
	"fmt"
	"strconv"
	"strings"
)

// Config is the server's response cache, as --cache-config sets it.
type Config struct {
	// Size is the cache's capacity in bytes; 0 means the server has no
	// response cache.
	Size int64
}

// ParseConfig reads the values of tritonserver's repeatable --cache-config
// flag, each "<cache>,<setting>=<value>" (local,size=1048576). The one
// cache is "local", with one setting, size: the capacity in bytes. No
// values mean no cache. Errors name the value and what is wrong with it.
func ParseConfig(values []string) (Config, error) {
	var c Config
	for _, v := range values {
		name, setting, ok := strings.Cut(v, ",")
		if !ok || name == "" {
			return Config{}, fmt.Errorf("no cache specified: --cache-config option format is <cache name>,<setting>=<value>, got %q", v)
		}
		key, value, ok := strings.Cut(setting, "=")
		if !ok || key == "" || value == "" {
			return Config{}, fmt.Errorf("--cache-config option format is '<cache name>,<setting>=<value>', got %q", v)
		}
		if name != "local" {
			return Config{}, fmt.Errorf("--cache-config %q: cache '%s' is not available (ofaserve has the 'local' cache)", v, name)
		}
		if key != "size" {
			return Config{}, fmt.Errorf("--cache-config %q: unknown setting '%s' of the local cache (it has: size)", v, key)
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n <= 0 {
			return Config{}, fmt.Errorf("--cache-config %q: size must be a positive number of bytes", v)
		}
		c.Size = n
	}
	return c, nil
}
