package encrypt

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// Key delivery for `end_to_end` namespaces (docs/encryption.md, "Keys from the
// ticket endpoint"): when the configuration holds end-to-end master keys, the
// ticket endpoint hands each client the keys of the end_to_end channels its
// token grants, and nothing else.
//
// A client must not get a key that opens channels its token does not grant, so
// what it gets depends on the grant's shape:
//
//   - a pattern granting a whole namespace ("vault:*", "*:*") → the namespace
//     key, HKDF-SHA256(master, salt = key id, info = "wsgate-e2e-ns-v1|" + ns);
//     clients derive channel keys from it exactly as from an application master
//     key, so a namespace key can also be given to an SDK as one;
//   - an exact channel ("vault:desk") → that channel's key, derived from the
//     namespace key (ChannelKey(namespace key, id, channel));
//   - any other pattern ("vault:desk-*") → nothing: no key opens exactly the
//     channels it matches.

// nsInfoPrefix is HKDF's info for namespace keys; distinct from infoPrefix, so
// a namespace key is never a channel key of another scheme.
const nsInfoPrefix = "wsgate-e2e-ns-v1|"

// maxDelivered bounds the keys of one ticket reply (the claims' pattern lists
// are bounded too; this keeps a reply small whatever they hold).
const maxDelivered = 256

// DeliveredKey is one end-to-end key in a ticket reply: exactly one of
// Namespace and Channel is set. The key ids' order is the configuration's: for
// one scope, the first listed seals.
type DeliveredKey struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace,omitempty"` // a namespace key: channel keys derive from it
	Channel   string `json:"channel,omitempty"`   // a channel key, used as is
	Key       string `json:"key"`                 // 32 bytes, base64url without padding
}

// NamespaceKey derives the key of an end_to_end namespace from a master key.
func NamespaceKey(secret []byte, id, namespace string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, []byte(id), nsInfoPrefix+namespace, 32)
	if err != nil {
		return nil, fmt.Errorf("encrypt: derive namespace key: %w", err)
	}
	return k, nil
}

// ClientKeys returns the keys a client whose token grants patterns (its "sub"
// and "pub" channel patterns) gets for the end_to_end namespaces, under every
// master key in keys. match is the server's channel pattern matcher (a '*'
// never crosses ':'), so the grants are read exactly as permissions are.
func ClientKeys(keys []Key, namespaces, patterns []string, match func(pattern, s string) bool) ([]DeliveredKey, error) {
	var wholeNS []string
	var channels []string
	for _, ns := range namespaces {
		if ns == "" {
			continue // the default namespace: its channels have no ':' and no namespace key
		}
		for _, p := range patterns {
			nsPart, name, ok := strings.Cut(p, ":")
			if !ok {
				continue
			}
			switch {
			case name != "" && strings.Trim(name, "*") == "" && match(nsPart, ns):
				wholeNS = append(wholeNS, ns)
			case nsPart == ns && name != "" && !strings.Contains(name, "*"):
				channels = append(channels, p)
			}
		}
	}
	slices.Sort(wholeNS)
	wholeNS = slices.Compact(wholeNS)
	slices.Sort(channels)
	channels = slices.Compact(channels)
	// A channel of a namespace delivered whole needs no key of its own.
	channels = slices.DeleteFunc(channels, func(ch string) bool {
		ns, _, _ := strings.Cut(ch, ":")
		_, whole := slices.BinarySearch(wholeNS, ns)
		return whole
	})
	var out []DeliveredKey
	b64 := base64.RawURLEncoding
	for _, ns := range wholeNS {
		for _, k := range keys {
			nk, err := NamespaceKey(k.Secret, k.ID, ns)
			if err != nil {
				return nil, err
			}
			out = append(out, DeliveredKey{ID: k.ID, Namespace: ns, Key: b64.EncodeToString(nk)})
		}
	}
	for _, ch := range channels {
		ns, _, _ := strings.Cut(ch, ":")
		for _, k := range keys {
			if len(out) >= maxDelivered {
				return out, nil
			}
			nk, err := NamespaceKey(k.Secret, k.ID, ns)
			if err != nil {
				return nil, err
			}
			ck, err := ChannelKey(nk, k.ID, ch)
			if err != nil {
				return nil, err
			}
			out = append(out, DeliveredKey{ID: k.ID, Channel: ch, Key: b64.EncodeToString(ck)})
		}
	}
	return out, nil
}

// Keyrings turns delivered keys into keyrings: per namespace (namespace keys act
// as master keys) and per channel (channel keys used as they are). The order of
// the keys of one scope is kept: the first seals.
func Keyrings(keys []DeliveredKey) (namespaces, channels map[string]*Keyring, err error) {
	nsKeys := map[string][]Key{}
	chKeys := map[string][]Key{}
	for _, d := range keys {
		k, err := base64.RawURLEncoding.DecodeString(d.Key)
		if err != nil || len(k) != 32 {
			return nil, nil, fmt.Errorf("encrypt: delivered key %q: not 32 bytes of base64url", d.ID)
		}
		switch {
		case d.Namespace != "" && d.Channel == "":
			nsKeys[d.Namespace] = append(nsKeys[d.Namespace], Key{ID: d.ID, Secret: k})
		case d.Channel != "" && d.Namespace == "":
			chKeys[d.Channel] = append(chKeys[d.Channel], Key{ID: d.ID, Secret: k})
		default:
			return nil, nil, fmt.Errorf("encrypt: delivered key %q: exactly one of namespace and channel", d.ID)
		}
	}
	namespaces, channels = map[string]*Keyring{}, map[string]*Keyring{}
	for ns, ks := range nsKeys {
		if namespaces[ns], err = NewKeyring(ks...); err != nil {
			return nil, nil, err
		}
	}
	for ch, ks := range chKeys {
		if channels[ch], err = NewChannelKeyring(ch, ks...); err != nil {
			return nil, nil, err
		}
	}
	return namespaces, channels, nil
}
