//go:build !linux

package main

import "errors"

func mountTmpfs(dir, size string) (func(), error) {
	return nil, errors.New("--disk-full needs Linux")
}
