// include/kiln.h, the hand-written C API header, seen from Swift (KilnC imports it for the
// kiln_tensor layout; the functions it declares are defined by KilnC with @_cdecl).
#include "../../../include/kiln.h"
