package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment variable wsgate reads. Nested keys are joined
// with a double underscore, because keys themselves contain single underscores:
// WSGATE_LIMITS__MAX_MESSAGE_BYTES=16384 sets limits.max_message_bytes. Lists take
// comma-separated values (WSGATE_TRUSTED_PROXIES=10.0.0.0/8,192.168.0.0/16).
const EnvPrefix = "WSGATE_"

// Load builds a Config from the defaults, then the YAML file at path (if path is not
// empty), then the environment (environ, usually os.Environ()). Flags are applied by
// the caller on the result, then Validate must be called.
func Load(path string, environ []string) (*Config, error) {
	k := koanf.New(".")
	pos := positions{}
	var errs []error
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		errs = append(errs, checkYAML(path, data, pos)...)
		if len(errs) == 0 {
			if err := k.Load(rawBytes(data), yaml.Parser()); err != nil {
				return nil, fmt.Errorf("config: %s: %w", path, err)
			}
		}
	}
	// Every WSGATE_* variable is checked too, and all problems reported together.
	errs = append(errs, checkEnv(environ, pos)...)
	if len(errs) > 0 {
		return nil, &ValidationError{Errs: errs}
	}
	envp := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__", "."), value
		},
	})
	if err := k.Load(envp, nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	return build(k, pos)
}

// Parse decodes YAML bytes over the defaults; it is Load without files or environment,
// for tests and for programs embedding wsgate.
func Parse(data []byte) (*Config, error) {
	pos := positions{}
	if errs := checkYAML("config", data, pos); len(errs) > 0 {
		return nil, &ValidationError{Errs: errs}
	}
	k := koanf.New(".")
	m, err := yaml.Parser().Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := k.Load(rawMap(m), nil); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return build(k, pos)
}

// build decodes what k loaded over the defaults; pos locates its keys in the
// files, for error messages.
func build(k *koanf.Koanf, pos positions) (*Config, error) {
	cfg := Default()
	if err := decode(k, cfg); err != nil {
		return nil, err
	}
	cfg.inheritTierDefaults()
	cfg.pos = pos
	return cfg, nil
}

// rawBytes is a koanf provider of bytes already read (and checked).
type rawBytes []byte

func (r rawBytes) ReadBytes() ([]byte, error)    { return r, nil }
func (r rawBytes) Read() (map[string]any, error) { return nil, errors.New("not supported") }

type rawMap map[string]any

func (r rawMap) ReadBytes() ([]byte, error)    { return nil, errors.New("not supported") }
func (r rawMap) Read() (map[string]any, error) { return r, nil }

func decode(k *koanf.Koanf, cfg *Config) error {
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
		WeaklyTypedInput: true,
		ErrorUnused:      true, // an unknown key is a typo until proven otherwise
	}
	if err := k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc}); err != nil {
		return fmt.Errorf("config: %s", cleanDecodeError(err))
	}
	return nil
}

// cleanDecodeError turns mapstructure's messages into ones that name the key and the fix.
func cleanDecodeError(err error) string {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "decoding failed due to the following error(s):\n\n", "")
	msg = strings.ReplaceAll(msg, "has invalid keys:", "unknown key(s) (check spelling against examples/wsgate.yaml):")
	return msg
}

// inheritTierDefaults fills budgets a tier leaves out from the built-in default tier,
// so that naming one budget never silently removes the others. A negative rate
// disables a budget explicitly.
func (c *Config) inheritTierDefaults() {
	def := Default().Rate.Tiers["default"]
	fill := func(r *RateLimit, d RateLimit) {
		switch {
		case r.Rate < 0:
			*r = RateLimit{}
		case r.Rate == 0 && r.Burst == 0:
			*r = d
		case r.Burst == 0:
			r.Burst = max(1, int(r.Rate))
		}
	}
	for name, t := range c.Rate.Tiers {
		fill(&t.Messages, def.Messages)
		fill(&t.Bytes, def.Bytes)
		fill(&t.UserMessages, def.UserMessages)
		fill(&t.UserBytes, def.UserBytes)
		fill(&t.IPMessages, def.IPMessages)
		fill(&t.IPBytes, def.IPBytes)
		c.Rate.Tiers[name] = t
	}
}
