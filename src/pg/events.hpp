// events.hpp: the ways events get into meter.events (events.cpp).
#pragma once

namespace pgm::pg {

// pm_events_register installs the relcache callback that forgets the
// cached column maps of meter.events' partitions (from _PG_init).
void pm_events_register();

}  // namespace pgm::pg
