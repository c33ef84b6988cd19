/* items_test.h — the item layer's tests use the shared TAP helpers. */
#include "tap.h"
