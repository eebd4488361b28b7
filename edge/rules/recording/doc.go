// Package recording turns public single-resident smart-home recordings
// (the Kasteren 2008 dataset and the MIT PlaceLab "Tapia 2004" subjects)
// into Lintel event logs, injects labelled collapses into them, and scores
// a replay of the rules against that ground truth.
//
// A recording is parsed into sensor firings in its own wall-clock time
// ([Load]); [Build] shifts it to a recent date in a chosen time zone
// (weekdays and times of day kept), maps the entrance door sensor to
// door.opened/door.closed and every other sensor to motion.detected, and
// adds one copy of the household per injected incident: a collapse at home
// (every event after the fall deleted until the resident is found) or a
// collapse right after a door cycle. The truth ([Truth]) has the format of
// `lintel sim elders`' truth.json plus the resident's real absences, so
// `lintel replay --truth` reads it; [Evaluate] gives the figures the elder
// rules are judged by on real routines: false care alerts per elder-month,
// detection of every injected collapse by the inactivity rule, and
// fall-to-alert delays by day and by night.
//
// docs/traces.md says where the data comes from and what the converter
// assumes.
package recording
