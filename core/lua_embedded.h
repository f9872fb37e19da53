/* lua_embedded: the Lua modules of lua/sipscope/, compiled to LuaJIT bytecode at build time
 * (scripts/embed_lua.lua writes lua_embedded.c), so that no file is looked up at run time. */
#ifndef SIPSCOPE_LUA_EMBEDDED_H
#define SIPSCOPE_LUA_EMBEDDED_H

#include <stddef.h>

struct lua_embedded {
    const char *name; /* module name: "sipscope.core" for lua/sipscope/core.lua */
    const unsigned char *data;
    size_t len;
};

/* Every module, ending with an entry whose name is NULL. */
extern const struct lua_embedded lua_embedded_modules[];

#endif
