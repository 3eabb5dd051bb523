package bolt

import (
	"context"

	"github.com/keygate/keygate/credentials"
)

// HMACKey returns HMAC key id without its secret. Returns not_found.
func (s *Store) HMACKey(ctx context.Context, id string) (*credentials.HMACKey, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	return nil, notFound("HMAC key", id)
}

// HMACKeys returns the HMAC keys of client ("" for all), without secrets.
func (s *Store) HMACKeys(ctx context.Context, clientID string) ([]credentials.HMACKey, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	return nil, nil
}
