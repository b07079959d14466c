{
  "targets": [
    {
      "target_name": "vmlink",
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "src"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [
        ["OS=='linux'", {
          "sources": ["<!@(node -p \"require('fs').readdirSync('src',{recursive:true}).filter(f=>f.endsWith('.cc')).sort().map(f=>'src/'+f).join(' ')\")"]
        }, {
          "sources": ["src/addon_unsupported.cpp"]
        }]
      ]
    }
  ]
}
