// Empty: CKilnAPI only exposes include/kiln.h to Swift.
#include "CKilnAPI.h"
