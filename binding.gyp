# For tools that drive node-gyp (electron-rebuild, @electron/rebuild, prebuild, npm's default install):
# the real build is CMake (CMakeLists.txt via cmake-js); this target only runs it. The addon uses
# Node-API, so the same binary loads in Node.js and Electron. Output: build/Release/imagebind_llm.node.
{
  "targets": [
    {
      "target_name": "imagebind_llm",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["build/Release/imagebind_llm.node"],
          "action": ["node", "scripts/build-native.mjs"]
        }
      ]
    }
  ]
}
