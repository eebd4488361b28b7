package edge

import "golang.org/x/sys/unix"

// kernelSynced asks the kernel whether NTP has disciplined the clock
// (adjtimex STA_UNSYNC clear).
func kernelSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return true // cannot tell: trust the floor check alone
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
