package client

import (
	"context"

	"github.com/cau-project/cau/protocol"
)

// Floor returns the floor as the server last announced it (nil before joined).
func (c *Client) Floor() *protocol.FloorState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.floor
}

// setFloor keeps the newest floor state (by version).
func (c *Client) setFloor(f *protocol.FloorState) {
	if f == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.floor == nil || f.Version >= c.floor.Version {
		c.floor = f
	}
}

// FloorAction asks for a floor change and returns the floor after it.
func (c *Client) FloorAction(ctx context.Context, a protocol.FloorAction) (*protocol.FloorState, error) {
	env, err := c.Request(ctx, protocol.KindFloorAction, a)
	if err != nil {
		return nil, err
	}
	var f protocol.FloorState
	if err := protocol.DecodeData(env, &f); err != nil {
		return nil, err
	}
	c.setFloor(&f)
	return &f, nil
}
