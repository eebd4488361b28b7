package config

import "reflect"

func reflect0(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }
