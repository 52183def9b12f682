package redis_test

import (
	"testing"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
)

func TestBrokerConformance(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		b, err := node(t, srv, "n1").Broker(redis.BrokerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
