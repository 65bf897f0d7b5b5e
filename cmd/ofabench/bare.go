package main

import (
	"context"
	"errors"
)

func runBare(ctx context.Context, args []string) error {
	_ = ctx
	_ = args
	return errors.New("bare: not built yet")
}
