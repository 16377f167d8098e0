//go:build !linux

package firewall

import (
	"context"
	"errors"
	"net/netip"
)

// errNoNFT is returned by NewNFT outside Linux.
var errNoNFT = errors.New("the nftables backend needs Linux")

// NFT is the nftables backend; it only exists on Linux.
type NFT struct{}

// NewNFT returns an error: nftables needs Linux.
func NewNFT(NFTOptions) (*NFT, error) { return nil, errNoNFT }

func (*NFT) Ban(context.Context, ...Ban) error            { return errNoNFT }
func (*NFT) Change(context.Context, []Lift, ...Ban) error { return errNoNFT }
func (*NFT) Unban(context.Context, ...netip.Prefix) error { return errNoNFT }
func (*NFT) UnbanIn(context.Context, string, ...netip.Prefix) error {
	return errNoNFT
}
func (*NFT) List(context.Context) ([]Entry, error)          { return nil, errNoNFT }
func (*NFT) Sync(context.Context, []Entry) error            { return errNoNFT }
func (*NFT) SetAllow(context.Context, []netip.Prefix) error { return errNoNFT }
func (*NFT) State(context.Context) State {
	return State{Backend: "nftables", LastError: errNoNFT.Error()}
}
func (*NFT) Close() error                    { return nil }
func (*NFT) Reconcile(context.Context) error { return errNoNFT }

var _ Backend = (*NFT)(nil)
