package wsgate

import (
	"fmt"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/limit"
	"github.com/wsgate/wsgate/internal/outbox"
	"github.com/wsgate/wsgate/internal/pipeline"
	"github.com/wsgate/wsgate/internal/schema"
)

func outboxOptions(cfg *config.Config) outbox.Options {
	return outbox.Options{MaxMessages: cfg.Limits.Outbox.MaxMessages, MaxBytes: cfg.Limits.Outbox.MaxBytes}
}

func pipelineOptions(cfg *config.Config, l limit.Limiter) (pipeline.Options, error) {
	tiers := make(map[string]pipeline.Tier, len(cfg.Rate.Tiers))
	for name, t := range cfg.Rate.Tiers {
		tiers[name] = pipeline.Tier{
			Messages: lim(t.Messages), Bytes: lim(t.Bytes),
			UserMessages: lim(t.UserMessages), UserBytes: lim(t.UserBytes),
			IPMessages: lim(t.IPMessages), IPBytes: lim(t.IPBytes),
		}
	}
	j := cfg.Limits.JSON
	reg, err := schema.New(schema.Options{Dir: cfg.Schemas.Dir, Inline: cfg.Schemas.Inline})
	if err != nil {
		return pipeline.Options{}, fmt.Errorf("schemas: %w", err)
	}
	abuse := cfg.Rate.AbuseLimited
	if abuse == 0 {
		abuse = -1 // 0 in the config means "never close for rate abuse"
	}
	return pipeline.Options{
		MaxBytes:     cfg.Limits.MaxMessageBytes,
		TypeMaxBytes: cfg.Limits.TypeMaxBytes,
		MaxDepth:     j.MaxDepth,
		MaxKeys:      j.MaxKeys,
		MaxArray:     j.MaxArrayLen,
		MaxString:    j.MaxStringLen,
		Registry:     reg,
		Limiter:      l,
		Tiers:        tiers,
		FailOpen:     cfg.Rate.FailOpen,
		AbuseMax:     abuse,
		AbuseWindow:  cfg.Rate.AbuseWindow,
	}, nil
}
