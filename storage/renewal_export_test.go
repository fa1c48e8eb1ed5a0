package storage

import "time"

// SetIntentRenewal sets how often streams renew their intents, for a test;
// it returns the undo.
func SetIntentRenewal(d time.Duration) func() {
	old := intentRenewal
	intentRenewal = d
	return func() { intentRenewal = old }
}
