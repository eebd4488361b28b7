package event

// MarshalReflect exposes the reference encoder to the tests.
func (e Event) MarshalReflect() ([]byte, error) { return e.marshalReflect() }
