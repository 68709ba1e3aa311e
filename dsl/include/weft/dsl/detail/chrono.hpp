// std::chrono durations, time points and literals, without the rest of <chrono>.
//
// In C++20 mode libstdc++'s <chrono> also brings calendars, time zones and formatting, which cost
// about 0.6 s of compile time in every translation unit (docs/benchmarks.md). weft needs only
// durations, clocks and the literals, which libstdc++ keeps in <bits/chrono.h>. Other standard
// libraries get <chrono>.
#pragma once

#include <version>

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif
